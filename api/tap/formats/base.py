"""The contract between the TAP service and the result writers.

The service runs a query, asks :class:`ResultFormat` for a writer, and sends
``begin()``, then ``write_rows()`` for each batch of rows as it arrives, then
``finish()``; every call returns bytes ready to go on the wire.  A writer holds
at most one batch (or one Parquet row group) in memory, so a result of any size
streams in bounded memory; a writer whose format needs the whole result before
its first byte (FITS) spools to a temporary file that ``close()`` removes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adql import ResultColumn

__all__ = ["ResultFormat", "ResultInfo", "ResultWriter", "WriterFactory", "query_status"]


@dataclass(frozen=True)
class ResultInfo:
    """What the service knows about a query, written wherever a format has room for it.

    VOTable writes these as INFO elements, Parquet as key-value metadata, FITS
    as header keywords and JSON as members; CSV and TSV have nowhere to put them.
    """

    query: str | None = None
    """The ADQL text."""
    infos: tuple[tuple[str, str], ...] = ()
    """Extra ``(name, value)`` pairs, e.g. ``("request_id", "...")``, ``("service", "dms-db")``."""


class ResultWriter(Protocol):
    """Encodes one result as a stream of byte chunks."""

    def begin(self) -> bytes:
        """The bytes before the first row (may be empty)."""
        ...

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """Encode one batch of rows; empty when the writer buffers them."""
        ...

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """The bytes after the last row; ``overflow`` says the result was cut at MAXREC."""
        ...

    def close(self) -> None:
        """Release temporary files; safe to call twice, and after an error."""
        ...


WriterFactory = Callable[[tuple[ResultColumn, ...], "ResultInfo"], ResultWriter]


@dataclass(frozen=True)
class ResultFormat:
    """One output format of the service, with the names a client may ask for it by."""

    name: str
    """Canonical short name: ``votable`` (TABLEDATA), ``votable-binary2``, ``csv``, ``tsv``, ``fits``, ..."""
    media_type: str
    """The Content-Type of a response in this format."""
    extension: str
    """The file name suffix, with its dot."""
    aliases: tuple[str, ...]
    """Every FORMAT value that selects this format (lower case; MIME types included), for the capabilities."""
    factory: WriterFactory = field(repr=False, compare=False)

    def writer(self, columns: Sequence[ResultColumn], info: ResultInfo | None = None) -> ResultWriter:
        """A new writer for one result with these columns."""
        return self.factory(tuple(columns), info if info is not None else ResultInfo())


def query_status(overflow: bool) -> str:
    """The DALI QUERY_STATUS of a successful result."""
    return "OVERFLOW" if overflow else "OK"
