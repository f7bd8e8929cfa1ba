"""Parquet results, streamed a row group at a time.

pyarrow's ``ParquetWriter`` writes into a sink that keeps what it is given
until the writer drains it, so each row group goes out as soon as it is
complete and memory holds at most one row group of Arrow data.  Batches are
gathered into row groups of about :data:`ROW_GROUP_BYTES` of Arrow data (at
most :data:`ROW_GROUP_ROWS` rows): the service's batches of a few thousand
rows would make row groups too small for readers to skip efficiently, while
pyarrow's encoders need several times a row group's size while they write it
(about 40 MiB of RSS for 4 MiB of data), which bounds how large they may be.

The Arrow schema comes from the column metadata (:mod:`.arrow`), with unit,
UCD and description as field metadata; the query and the extra infos are
key-value metadata of the schema.  Repeated column names get a suffix
(``ra``, ``ra_2``) because pyarrow's dataset reader refuses repeats.  Whether the result overflowed is only known
at the end: it is added to the file's footer with
``ParquetWriter.add_key_value_metadata`` as ``QUERY_STATUS`` (read it with
``pyarrow.parquet.read_metadata(...).metadata``; ``read_table`` shows only the
schema's metadata).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from adql import ResultColumn

from .arrow import arrow_batch, arrow_schema
from .base import ResultInfo, query_status
from .values import unique_names

__all__ = ["ROW_GROUP_BYTES", "ROW_GROUP_ROWS", "ParquetWriter"]

ROW_GROUP_BYTES = 2 * 2**20
"""Arrow bytes gathered before a row group is written."""
ROW_GROUP_ROWS = 65_536
"""Rows gathered before a row group is written, however narrow they are."""


class _DrainableSink:
    """A write-only file that keeps what it is given until :meth:`drain` takes it."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing is buffered below this object."""

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        """Everything written since the last drain."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ParquetWriter:
    """A Parquet file, written row group by row group."""

    def __init__(
        self,
        columns: Sequence[ResultColumn],
        info: ResultInfo,
        *,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        metadata = {name: value for name, value in info.infos}
        if info.query is not None:
            metadata["QUERY"] = info.query
        names = unique_names([column.name for column in columns])
        renamed = [dataclasses.replace(column, name=name) for column, name in zip(columns, names, strict=True)]
        self._schema = arrow_schema(renamed).with_metadata(metadata or None)
        self._row_group_rows = row_group_rows
        self._row_group_bytes = row_group_bytes
        self._pending_bytes = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._sink = _DrainableSink()
        self._writer: pq.ParquetWriter | None = None

    def begin(self) -> bytes:
        """The file's magic number."""
        self._writer = pq.ParquetWriter(self._sink, self._schema)
        return self._sink.drain()

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """Convert a batch to Arrow; a row group once enough rows are waiting."""
        if not rows:
            return b""
        batch = arrow_batch(self._schema, rows)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows < self._row_group_rows and self._pending_bytes < self._row_group_bytes:
            return b""
        return self._write_pending()

    def _started_writer(self) -> pq.ParquetWriter:
        if self._writer is None:
            raise RuntimeError("begin() must come first, and nothing after finish()")
        return self._writer

    def _write_pending(self) -> bytes:
        writer = self._started_writer()
        if self._pending:
            writer.write_table(pa.Table.from_batches(self._pending, schema=self._schema))
            self._pending.clear()
            self._pending_rows = self._pending_bytes = 0
        return self._sink.drain()

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """The last row group and the footer, with the query status."""
        data = self._write_pending()
        writer = self._started_writer()
        writer.add_key_value_metadata({"QUERY_STATUS": query_status(overflow)})
        writer.close()
        self._writer = None
        yield data + self._sink.drain()

    def close(self) -> None:
        """Drop the pending rows; the writer's own state is in memory only."""
        self._pending.clear()
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
