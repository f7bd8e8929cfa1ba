"""Query results as Arrow batches, written to CSV or Parquet a batch at a time.

Rows arrive from the engine as Python tuples; they are grouped into Arrow
record batches whose schema comes from the result's column metadata (not
inferred from the values, so an all-NULL batch keeps its type; the conversion
is shared with the TAP service's writers in :mod:`api.tap.formats.arrow`), and
written with pyarrow's CSV and Parquet writers.  Memory holds one batch, whatever the
result size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from adql import ResultColumn
from api.tap.formats.arrow import arrow_batch, arrow_schema, arrow_type
from dms_db.errors import UserError

__all__ = [
    "FILE_FORMATS",
    "arrow_schema",
    "arrow_type",
    "record_batches",
    "result_file_format",
    "write_result_file",
]

FILE_FORMATS = {".csv": "csv", ".parquet": "parquet"}


def record_batches(
    columns: tuple[ResultColumn, ...], rows: Iterable[tuple[Any, ...]], batch_rows: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """Group rows into record batches of the result's schema."""
    schema = arrow_schema(columns)
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, batch_rows)):
        yield arrow_batch(schema, chunk)


def result_file_format(path: Path) -> str:
    """The format a result file gets from its suffix; a clear error for an unknown one."""
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise UserError(
            f"cannot tell the output format of {path.name!r} from its suffix",
            hint=f"name the file with one of {', '.join(sorted(FILE_FORMATS))}",
        )
    return file_format


def write_result_file(path: Path, columns: tuple[ResultColumn, ...], rows: Iterable[tuple[Any, ...]]) -> int:
    """Write a result to ``path`` (format from its suffix); returns the number of rows."""
    file_format = result_file_format(path)
    schema = arrow_schema(columns)
    written = 0
    if file_format == "parquet":
        with pq.ParquetWriter(path, schema) as writer:
            for batch in record_batches(columns, rows):
                writer.write_batch(batch)
                written += batch.num_rows
    else:
        csv_schema = pa.schema([f.with_type(pa.string()) if pa.types.is_list(f.type) else f for f in schema])
        with pa_csv.CSVWriter(path, csv_schema) as writer:
            for batch in record_batches(columns, rows):
                arrays = [
                    pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
                    if pa.types.is_list(column.type)
                    else column
                    for column in batch.columns
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=csv_schema))
                written += batch.num_rows
    return written
