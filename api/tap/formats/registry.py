"""The output formats of the TAP service and how a FORMAT value selects one.

TAP 1.1 (section 2.7.1) lets clients name a format by MIME type or by a short
alias, case-insensitively; MIME parameters may come with spaces and quotes
(``application/x-votable+xml; serialization="BINARY2"``).  A value is reduced
to a canonical spelling (lower case, parameters as ``;key=value``, a
``charset=utf-8`` parameter dropped since every format here is UTF-8) and
looked up among every format's aliases.  VOTable MIME types select the
serialization by their ``serialization`` parameter, TABLEDATA when there is
none; no FORMAT at all gets BINARY2, the compact and fast default.
"""

from __future__ import annotations

from dms_db.errors import UserError

from .base import ResultFormat
from .binary2 import Binary2Writer
from .delimited import CsvWriter, TsvWriter
from .fits import FitsWriter
from .json import JsonWriter
from .parquet import ParquetWriter
from .votable import TableDataWriter

__all__ = ["DEFAULT_FORMAT", "FORMATS", "UnknownFormatError", "resolve_format"]

_VOTABLE_TYPES = ("votable", "application/x-votable+xml", "text/xml", "application/xml")

VOTABLE = ResultFormat(
    name="votable",
    media_type="application/x-votable+xml;serialization=TABLEDATA",
    extension=".xml",
    aliases=(*_VOTABLE_TYPES, "votable/td", "votable_td", "application/x-votable+xml;serialization=tabledata"),
    factory=TableDataWriter,
)
VOTABLE_BINARY2 = ResultFormat(
    name="votable-binary2",
    media_type="application/x-votable+xml;serialization=BINARY2",
    extension=".xml",
    aliases=(
        "votable-binary2",
        "votable/b2",
        "votable_b2",
        "binary2",
        "application/x-votable+xml;serialization=binary2",
    ),
    factory=Binary2Writer,
)
CSV = ResultFormat(
    name="csv",
    media_type="text/csv;header=present",
    extension=".csv",
    aliases=("csv", "text/csv", "text/csv;header=present"),
    factory=CsvWriter,
)
TSV = ResultFormat(
    name="tsv",
    media_type="text/tab-separated-values",
    extension=".tsv",
    aliases=("tsv", "text/tab-separated-values"),
    factory=TsvWriter,
)
FITS = ResultFormat(
    name="fits",
    media_type="application/fits",
    extension=".fits",
    aliases=("fits", "application/fits"),
    factory=FitsWriter,
)
PARQUET = ResultFormat(
    name="parquet",
    media_type="application/vnd.apache.parquet",
    extension=".parquet",
    aliases=("parquet", "application/vnd.apache.parquet", "application/x-parquet"),
    factory=ParquetWriter,
)
JSON = ResultFormat(
    name="json",
    media_type="application/json",
    extension=".json",
    aliases=("json", "application/json"),
    factory=JsonWriter,
)

FORMATS: tuple[ResultFormat, ...] = (VOTABLE_BINARY2, VOTABLE, CSV, TSV, FITS, PARQUET, JSON)
"""Every output format, the default first."""

DEFAULT_FORMAT = VOTABLE_BINARY2
"""The format of a request without FORMAT (or with an empty one)."""

_BY_ALIAS = {alias: result_format for result_format in FORMATS for alias in result_format.aliases}
_SERIALIZATIONS = {"tabledata": VOTABLE, "binary2": VOTABLE_BINARY2}


class UnknownFormatError(UserError):
    """FORMAT (or RESPONSEFORMAT) names a format this service does not write."""

    error_type = "UnknownFormat"

    def __init__(self, value: str) -> None:
        accepted = ", ".join(f.name for f in FORMATS)
        types = ", ".join(f.media_type for f in FORMATS)
        super().__init__(
            f"the output format {value!r} is not supported",
            hint=f"set FORMAT to one of {accepted}, or to one of the MIME types {types}",
        )
        self.value = value


def _canonical(value: str) -> tuple[str, dict[str, str]]:
    """The lower-case MIME type (or alias) and its parameters, without spaces or quotes."""
    main, *parts = value.split(";")
    parameters = {}
    for part in parts:
        if not part.strip():
            continue
        key, equals, parameter = part.partition("=")
        if not equals:
            raise UnknownFormatError(value)
        parameters[key.strip().lower()] = parameter.strip().strip("\"'").strip().lower()
    if parameters.get("charset") in ("utf-8", "utf8"):
        del parameters["charset"]
    return main.strip().lower(), parameters


def resolve_format(value: str | None) -> ResultFormat:
    """The format a TAP FORMAT or RESPONSEFORMAT value asks for.

    Raises
    ------
    UnknownFormatError
        The value names no format of this service; the message lists those it has.

    Examples
    --------
    >>> resolve_format('application/x-votable+xml; serialization="BINARY2"').name
    'votable-binary2'
    >>> resolve_format("TEXT/CSV").name, resolve_format(None).name
    ('csv', 'votable-binary2')
    """
    if value is None or not value.strip():
        return DEFAULT_FORMAT
    main, parameters = _canonical(value)
    votable = main in _VOTABLE_TYPES or (main == "" and "serialization" in parameters)
    if votable and set(parameters) <= {"serialization"}:
        serialization = parameters.get("serialization", "tabledata")
        if serialization in _SERIALIZATIONS:
            return _SERIALIZATIONS[serialization]
        raise UnknownFormatError(value)
    key = main + "".join(f";{name}={parameter}" for name, parameter in sorted(parameters.items()))
    result_format = _BY_ALIAS.get(key)
    if result_format is None:
        raise UnknownFormatError(value)
    return result_format
