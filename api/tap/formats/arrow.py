"""Result rows as Arrow record batches whose schema comes from the column metadata.

The schema is derived from the metadata, never inferred from the values, so a
batch of NULLs keeps its type and every batch of a result has the same schema.
Parquet (TAP and the CLI's result files) and the FITS spool build on this.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from adql import ResultColumn

__all__ = ["arrow_batch", "arrow_schema", "arrow_type", "column_array"]

_SCALARS: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "short": pa.int16(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "unsignedByte": pa.uint8(),
}


def arrow_type(column: ResultColumn) -> pa.DataType:
    """The Arrow type of a result column (lists for geometry, text for characters)."""
    if column.xtype == "timestamp":
        return pa.timestamp("us")
    scalar = _SCALARS.get(column.datatype)
    if scalar is None:
        return pa.string()
    if column.arraysize and column.arraysize != "1":
        return pa.string() if column.datatype == "boolean" else pa.list_(scalar)
    return scalar


def arrow_schema(columns: Iterable[ResultColumn]) -> pa.Schema:
    """The Arrow schema of a result, with units, UCDs and descriptions as field metadata."""
    fields = []
    for column in columns:
        metadata = {
            k: v for k, v in (("unit", column.unit), ("ucd", column.ucd), ("description", column.description)) if v
        }
        fields.append(pa.field(column.name, arrow_type(column), metadata=metadata or None))
    return pa.schema(fields)


def _utc_naive(value: Any) -> Any:
    # Arrow would drop the offset of an aware datetime without converting it.
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and not value.is_nan() else float(value)
    return value


def column_array(values: Sequence[Any], data_type: pa.DataType) -> pa.Array:
    """An Arrow array of ``data_type`` from Python values as psycopg returns them.

    The fast path hands the values to pyarrow unchanged; only when pyarrow
    refuses them (Decimals from ``numeric`` columns, values of another type in
    a text column) are they converted one by one.
    """
    if pa.types.is_timestamp(data_type):
        return pa.array([_utc_naive(v) for v in values], type=data_type)
    try:
        return pa.array(values, type=data_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    if pa.types.is_string(data_type):
        return pa.array([v if v is None or type(v) is str else str(v) for v in values], type=data_type)
    if pa.types.is_floating(data_type):
        return pa.array([None if v is None else float(v) for v in values], type=data_type)
    if pa.types.is_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return pa.array([None if v is None else [_number(e) for e in v] for v in values], type=data_type)
    return pa.array([_number(v) for v in values], type=data_type)


def arrow_batch(schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
    """One record batch of ``schema`` holding ``rows``."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=schema)
    arrays = [column_array(values, field.type) for values, field in zip(zip(*rows, strict=True), schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
