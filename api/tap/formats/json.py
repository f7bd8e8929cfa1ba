"""JSON results, streamed as one document.

The document is ``{"metadata": [...], "query": ..., "info": [...], "data":
[[...], ...], "query_status": "OK"}``: the metadata repeats the VOTable FIELD
attributes, ``data`` holds one array per row, and ``query_status`` comes last
because only the end of the stream knows whether the result overflowed.  JSON
has no NaN or infinity, so they become null like NULL itself; timestamps are
ISO 8601 strings and geometries arrays of numbers.  Each batch is encoded with
one call of the C encoder over the converted rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from adql import ResultColumn

from .base import ResultInfo, query_status
from .values import ColumnLayout, Kind, column_layout, timestamp_text

__all__ = ["JsonWriter"]


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    return value if value is None or type(value) is int else int(value)


def _converter(layout: ColumnLayout) -> Callable[[Any], Any] | None:
    """How to turn a value into something ``json.dumps`` writes correctly; None when it already is."""
    kind = layout.kind
    if kind is Kind.FLOAT:
        return _float
    if kind is Kind.INTEGER:
        return _integer
    if kind is Kind.BOOLEAN:
        return lambda value: value if value is None else bool(value)
    if kind is Kind.TIMESTAMP:
        return lambda value: value if value is None else timestamp_text(value)
    if kind is Kind.TEXT:
        return lambda value: value if value is None or type(value) is str else str(value)
    element = _float if layout.is_float else _integer
    return lambda value: value if value is None else [element(e) for e in value]


def _metadata(column: ResultColumn) -> dict[str, str | None]:
    return {
        "name": column.name,
        "datatype": column.datatype,
        "arraysize": column.arraysize,
        "xtype": column.xtype,
        "unit": column.unit,
        "ucd": column.ucd,
        "description": column.description,
    }


def _default(value: Any) -> str:
    # Values the converters do not expect (a UUID in an array...) are written
    # as text rather than failing the whole result.
    return str(value)


# Compact separators: a batch boundary is then indistinguishable from a row boundary.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default)


class JsonWriter:
    """A JSON document with the column metadata and the rows as arrays."""

    def __init__(self, columns: Sequence[ResultColumn], info: ResultInfo) -> None:
        self._columns = tuple(columns)
        self._info = info
        self._converters = [_converter(column_layout(column)) for column in columns]
        self._rows_written = False

    def begin(self) -> bytes:
        """The metadata, the query, the extra infos and the opening of ``data``."""
        head = {
            "metadata": [_metadata(column) for column in self._columns],
            "query": self._info.query,
            "info": [{"name": name, "value": value} for name, value in self._info.infos],
        }
        return (json.dumps(head, ensure_ascii=False)[:-1] + ', "data": [\n').encode()

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """The rows as JSON arrays."""
        if not rows:
            return b""
        columns = [
            values if convert is None else list(map(convert, values))
            for convert, values in zip(self._converters, zip(*rows, strict=True), strict=True)
        ]
        converted = list(zip(*columns, strict=True)) if columns else [()] * len(rows)
        text = _ENCODER.encode(converted)[1:-1]  # the rows without the list's brackets
        separator = "," if self._rows_written else ""
        self._rows_written = True
        return (separator + text).encode()

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """Close ``data`` and give the query status."""
        yield f'\n], "query_status": "{query_status(overflow)}"}}\n'.encode()

    def close(self) -> None:
        """Nothing to release."""
