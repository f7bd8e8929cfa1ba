"""Turn simulated columns into DataFrames whose columns and dtypes are exactly those of a Felis table.

The dtype of a column follows from its Felis datatype and nullability alone:

========================  ==========================  =================================
Felis                     NOT NULL                    nullable
========================  ==========================  =================================
long / int / short / byte int64 / int32 / int16 / int8  Int64 / Int32 / Int16 / Int8 (pandas, ``<NA>``)
double / float            float64 / float32           the same, NaN for null
boolean                   bool                        boolean (pandas, ``<NA>``)
char / string / unicode   object (str)                object (str or None)
timestamp                 datetime64[ns], naive UTC   the same, NaT for null
========================  ==========================  =================================

Strings stay ``object`` even under pandas 3, whose default would be its ``str`` dtype.
Timestamps are naive because the shipped schemas' columns are PostgreSQL
``TIMESTAMP`` (without time zone); their values are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from felis.datamodel import Column

from dms_db.catalog_schema import CatalogTable, load_catalog_schema, shipped_schema_path
from dms_db.errors import InternalError

_INTEGERS = {"byte": "int8", "short": "int16", "int": "int32", "long": "int64"}
_FLOATS = {"float": "float32", "double": "float64"}
_STRINGS = {"char", "string", "unicode", "text"}


def pandas_dtype(column: Column) -> Any:
    """The dtype a simulated frame uses for a Felis column (see the module docstring)."""
    datatype = column.datatype.value
    nullable = column.nullable is not False
    if datatype in _INTEGERS:
        numpy_name = _INTEGERS[datatype]
        return pd.api.types.pandas_dtype(numpy_name.capitalize()) if nullable else np.dtype(numpy_name)
    if datatype in _FLOATS:
        return np.dtype(_FLOATS[datatype])
    if datatype == "boolean":
        return pd.BooleanDtype() if nullable else np.dtype(bool)
    if datatype in _STRINGS:
        return np.dtype(object)
    if datatype == "timestamp":
        return np.dtype("datetime64[ns]")
    raise InternalError(f"the simulator has no dtype for Felis datatype {datatype!r} of column {column.name!r}")


@cache
def shipped_table(schema: str, table: str) -> CatalogTable:
    """A table of a shipped schema (``"apdb"``, ``"dr"``), parsed once per process."""
    return load_catalog_schema(shipped_schema_path(schema)).table(table)


def compact(batch: MutableMapping[str, Any], table: CatalogTable) -> None:
    """Cast a batch's numeric columns to their storage dtype now, so batches are held at final size.

    Columns unknown to the table (the simulator's own bookkeeping) are left alone.
    """
    for column in table.felis.columns:
        values = batch.get(column.name)
        if not isinstance(values, np.ndarray):
            continue
        dtype = pandas_dtype(column)
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            dtype = np.dtype(dtype.numpy_dtype)
        if dtype.kind in "iufb":
            batch[column.name] = values.astype(dtype, copy=False)


def masked(values: np.ndarray, null: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A nullable pandas array of integers or booleans, null where ``null`` is true.

    Integer ids must not round-trip through float64 (NaN) or they lose their low bits.
    """
    values = np.asarray(values)
    null = np.asarray(null, dtype=bool)
    if values.dtype == bool:
        return pd.arrays.BooleanArray(values, null)
    return pd.arrays.IntegerArray(values.astype(np.int64), null)


def _null_column(dtype: Any, n: int) -> Any:
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return masked(np.zeros(n, dtype=dtype.numpy_dtype), np.ones(n, dtype=bool)).astype(dtype)
    if dtype == np.dtype(object):
        return pd.Series(np.full(n, None, dtype=object), dtype=object)
    if dtype.kind == "M":
        return np.full(n, np.datetime64("NaT"), dtype=dtype)
    return np.full(n, np.nan, dtype=dtype)


def _convert(column: Column, values: Any, dtype: Any, n: int) -> Any:
    if values is None:
        return _null_column(dtype, n)
    if dtype == np.dtype(object):
        array = np.asarray(values, dtype=object)
        longest = max((len(s) for s in set(array.tolist()) if s is not None), default=0)  # few distinct values
        if column.length is not None and longest > column.length:
            raise InternalError(f"simulated {column.name!r} has strings longer than {column.length}")
        return pd.Series(array, dtype=object, copy=False)  # pandas 3 would otherwise infer its ``str`` dtype
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return values.astype(dtype)
    array = np.asarray(values)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return pd.array(array, dtype=dtype)
    return array.astype(dtype, copy=False)


def conform(table: CatalogTable, columns: Mapping[str, Any]) -> pd.DataFrame:
    """A frame with exactly the table's columns, in schema order, with the dtypes of :func:`pandas_dtype`.

    Parameters
    ----------
    table
        The Felis table the frame is a batch of.
    columns
        A value per column name: an array, or ``None`` for a column that is null on
        every row. Missing or extra names are a bug of the simulator.

    Raises
    ------
    InternalError
        If a column is missing, unknown, of the wrong length, or null where the
        schema forbids it: the simulator must never produce rows a loader would reject.
    """
    names = [c.name for c in table.felis.columns]
    missing, extra = set(names) - set(columns), set(columns) - set(names)
    if missing or extra:
        raise InternalError(f"simulated {table.name}: missing columns {sorted(missing)}, unknown {sorted(extra)}")
    lengths = {len(v) for v in columns.values() if v is not None}
    if len(lengths) > 1:
        raise InternalError(f"simulated {table.name}: columns of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    data = {c.name: _convert(c, columns[c.name], pandas_dtype(c), n) for c in table.felis.columns}
    frame = pd.DataFrame(data, copy=False)
    for column in table.felis.columns:
        if column.nullable is False and frame[column.name].isna().any():
            raise InternalError(f"simulated {table.name}.{column.name} is NOT NULL but has nulls")
    return frame


def empty_frame(table: CatalogTable) -> pd.DataFrame:
    """A frame with no rows and the table's columns and dtypes."""
    return conform(table, {c.name: None if c.nullable is not False else [] for c in table.felis.columns})
