"""Check one batch of input against a catalog table and convert it to the table's types.

A pure transform: an Arrow table in, a new Arrow table out, with exactly the
table's columns in schema order and types; problems are collected (file, row,
column, value) rather than raised one at a time, so that a user sees many of
them at once.  Arrow nulls are SQL NULLs; a float NaN stays a NaN value.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dms_db.catalog_schema import CatalogTable
from loaders.errors import MAX_REPORTED_PROBLEMS, Problem

_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "byte": pa.int8(),
    "short": pa.int16(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "char": pa.string(),
    "string": pa.string(),
    "unicode": pa.string(),
    "text": pa.string(),
    "binary": pa.binary(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_TRUE = {"t", "true", "1", "y", "yes"}
_FALSE = {"f", "false", "0", "n", "no"}


def arrow_type(felis_datatype: str) -> pa.DataType:
    """The Arrow type dms-db uses for a Felis datatype."""
    return _ARROW_TYPES[felis_datatype]


class ProblemCollector:
    """Keeps the first problems of a load and counts all of them."""

    def __init__(self, limit: int = MAX_REPORTED_PROBLEMS) -> None:
        self.limit = limit
        self.problems: list[Problem] = []
        self.total = 0

    def add(self, problem: Problem) -> None:
        """Record one problem."""
        self.total += 1
        if len(self.problems) < self.limit:
            self.problems.append(problem)

    def add_rows(
        self, source: str, mask: np.ndarray, row_offset: int, column: str, values: pa.Array | None, message: str
    ) -> None:
        """Record a problem for every row where ``mask`` is true (vectorised)."""
        bad = np.flatnonzero(mask)
        if bad.size == 0:
            return
        room = max(0, self.limit - len(self.problems))
        for position in bad[:room]:
            value = None if values is None else _show(values[int(position)])
            self.problems.append(Problem(source, row_offset + int(position) + 1, column, value, message))
        self.total += int(bad.size)

    def __bool__(self) -> bool:
        return self.total > 0


def one_array(column: pa.ChunkedArray) -> pa.Array:
    """A column as one array: its only chunk as it is (``combine_chunks`` would copy it), else the chunks joined."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _show(scalar: pa.Scalar) -> str | None:
    value = scalar.as_py()
    return None if value is None else str(value)


def conform_batch(
    batch: pa.Table, table: CatalogTable, source: str, row_offset: int, problems: ProblemCollector
) -> pa.Table:
    """Return ``batch`` with the table's columns and types; record what does not fit.

    Parameters
    ----------
    batch
        Input rows (any column order; extra columns are an error).
    table
        The target catalog table.
    source
        Input name for problem reports.
    row_offset
        Data rows before this batch in the same input, for 1-based row numbers.
    problems
        Where problems go.
    """
    expected = table.column_names
    if row_offset == 0:
        _check_column_names(batch.column_names, expected, table, source, problems)
    arrays = []
    for column in table.felis.columns:
        target = arrow_type(column.datatype.value)
        if column.name in batch.column_names:
            values = _convert(one_array(batch[column.name]), target, column.name, source, row_offset, problems)
        else:
            values = pa.nulls(batch.num_rows, type=target)
        if column.nullable is False and column.name in batch.column_names:
            nulls = values.is_null().to_numpy(zero_copy_only=False)
            message = "must not be null"
            if pa.types.is_floating(target):
                message += " (pandas turns NaN into null)"
            problems.add_rows(source, nulls, row_offset, column.name, None, message)
        if column.length and pa.types.is_string(target):
            too_long = pc.fill_null(pc.greater(pc.utf8_length(values), column.length), False)
            mask = too_long.to_numpy(zero_copy_only=False)
            problems.add_rows(source, mask, row_offset, column.name, values, f"longer than {column.length} characters")
        arrays.append(values)
    conformed = pa.table(arrays, names=[c.name for c in table.felis.columns])
    if table.ra_column and table.dec_column:
        _check_positions(conformed, table, source, row_offset, problems)
    return conformed


def _check_column_names(
    present: list[str], expected: list[str], table: CatalogTable, source: str, problems: ProblemCollector
) -> None:
    for name in present:
        if name not in expected:
            close = difflib.get_close_matches(name, expected, n=1)
            hint = f"; did you mean {close[0]}? (use --map {name}={close[0]})" if close else "; drop it or map it"
            problems.add(Problem(source, None, name, None, f"is not a column of {table.name}{hint}"))
    for column in table.felis.columns:
        if column.nullable is False and column.name not in present:
            problems.add(Problem(source, None, column.name, None, "required column is missing"))


def _convert(
    values: pa.Array, target: pa.DataType, column: str, source: str, row_offset: int, problems: ProblemCollector
) -> pa.Array:
    if values.type == target:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), type=target)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return _parse_strings(values, target, column, source, row_offset, problems)
    if pa.types.is_timestamp(values.type) and pa.types.is_timestamp(target):
        # Sub-microsecond precision is dropped: PostgreSQL stores microseconds.  Naive values are
        # taken as UTC: Arrow stores every timestamp as UTC-based, so the cast just labels them
        # (as assume_timezone(..., "UTC") would, without its per-value zone look-ups).
        micro = pc.cast(values, pa.timestamp("us", tz=values.type.tz), safe=False)
        return pc.cast(micro, target)
    if pa.types.is_floating(target) and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        # Precision loss is what a float column means; overflow to infinity is not.
        converted = pc.cast(values, target, safe=False)
        before = pc.is_finite(pc.cast(values, pa.float64(), safe=False)).to_numpy(zero_copy_only=False)
        after = pc.is_finite(converted).to_numpy(zero_copy_only=False)
        overflow = (
            np.asarray(before, bool) & ~np.asarray(after, bool) & ~values.is_null().to_numpy(zero_copy_only=False)
        )
        problems.add_rows(source, overflow, row_offset, column, values, f"is too large for {target}")
        return converted
    try:
        return pc.cast(values, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Find the rows that do not fit, then null them so validation can go on.
    try:
        as_float = pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        problems.add_rows(source, np.ones(len(values), bool), row_offset, column, values, f"cannot be read as {target}")
        return pa.nulls(len(values), type=target)
    if pa.types.is_integer(target):
        bad = _not_integral(as_float, target)
        problems.add_rows(source, bad, row_offset, column, values, f"does not fit {target}")
        cleaned = pc.if_else(pa.array(bad), pa.nulls(len(values), values.type), values)
        return pc.cast(cleaned, target, safe=False)
    problems.add_rows(source, np.ones(len(values), bool), row_offset, column, values, f"cannot be read as {target}")
    return pa.nulls(len(values), type=target)


def _not_integral(as_float: np.ndarray, target: pa.DataType) -> np.ndarray:
    """Rows whose value is fractional or outside the integer type's range."""
    info = np.iinfo(target.to_pandas_dtype())
    with np.errstate(invalid="ignore"):
        outside = (as_float < info.min) | (as_float > info.max)
        return ~np.isnan(as_float) & ((as_float != np.round(as_float)) | outside)


def _parse_strings(
    values: pa.Array, target: pa.DataType, column: str, source: str, row_offset: int, problems: ProblemCollector
) -> pa.Array:
    if pa.types.is_string(target):
        return pc.cast(values, target)
    stripped = pc.utf8_trim_whitespace(values)
    empty = pc.fill_null(pc.equal(stripped, ""), True).to_numpy(zero_copy_only=False)
    text = pd.Series(stripped.to_numpy(zero_copy_only=False), dtype=object)
    if pa.types.is_boolean(target):
        lowered = text.str.lower()
        parsed = pd.Series(pd.NA, index=text.index, dtype="boolean")
        parsed[lowered.isin(_TRUE)] = True
        parsed[lowered.isin(_FALSE)] = False
        bad = parsed.isna().to_numpy() & ~empty
        problems.add_rows(source, bad, row_offset, column, values, "is not a boolean (true/false, t/f, 1/0)")
        return pa.array(parsed, type=target, from_pandas=True)
    if pa.types.is_timestamp(target):
        parsed_ts = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        bad = parsed_ts.isna().to_numpy() & ~empty
        problems.add_rows(source, bad, row_offset, column, values, "is not a timestamp (ISO 8601)")
        return pa.array(parsed_ts, type=target, from_pandas=True)
    numbers = pd.to_numeric(text, errors="coerce")
    literal_nan = text.str.lower().isin({"nan", "+nan", "-nan"}).to_numpy()
    as_float = numbers.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(as_float) & ~empty & ~literal_nan
    problems.add_rows(source, bad, row_offset, column, values, f"is not a number of type {target}")
    if pa.types.is_integer(target):
        wrong = _not_integral(as_float, target)
        problems.add_rows(source, wrong, row_offset, column, values, f"does not fit {target}")
        exact = pd.to_numeric(text.where(~(bad | wrong | empty | literal_nan), None), errors="coerce")
        return pa.array(exact.astype("Int64"), type=pa.int64(), from_pandas=True).cast(target, safe=False)
    mask = empty | bad
    result = pa.array(as_float, mask=mask, type=pa.float64())
    return pc.cast(result, target, safe=False)


def _check_positions(
    batch: pa.Table, table: CatalogTable, source: str, row_offset: int, problems: ProblemCollector
) -> None:
    assert table.ra_column is not None and table.dec_column is not None
    ra_values = one_array(batch[table.ra_column])
    dec_values = one_array(batch[table.dec_column])
    ra = ra_values.to_numpy(zero_copy_only=False).astype(float)
    dec = dec_values.to_numpy(zero_copy_only=False).astype(float)
    ra_null = ra_values.is_null().to_numpy(zero_copy_only=False)
    dec_null = dec_values.is_null().to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        bad_ra = ~ra_null & (~np.isfinite(ra) | (ra < 0.0) | (ra >= 360.0))
        bad_dec = ~dec_null & (~np.isfinite(dec) | (dec < -90.0) | (dec > 90.0))
    ra_rule = "must be finite and in [0, 360) degrees"
    dec_rule = "must be finite and in [-90, 90] degrees"
    problems.add_rows(source, bad_ra, row_offset, table.ra_column, ra_values, ra_rule)
    problems.add_rows(source, bad_dec, row_offset, table.dec_column, dec_values, dec_rule)
