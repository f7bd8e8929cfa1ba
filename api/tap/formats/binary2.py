"""VOTable 1.4 results in the BINARY2 serialization, encoded a batch at a time.

Each row is a null-flag bitmap (one bit per field, first field in the most
significant bit) followed by the fields, big-endian; variable-length values
carry a 4-byte element count.  The stream is base64 inside
``<BINARY2><STREAM encoding="base64">``.

Speed comes from working a column at a time: the fixed-width fields between
two variable-length ones form one numpy structured array per batch (each
variable field's count is the last member of the structure before it), so the
only Python work per value is encoding text; rows are then interleaved with
one ``bytes.join``.  base64 is written in lines of 76 characters (57 bytes,
as MIME does), whole lines per batch with the remaining bytes carried to the
next one, so the output does not depend on how the rows were batched.  The
lines are cut with numpy rather than ``base64.encodebytes``, whose Python loop
per line would cost more than the encoding.

Text keeps its declared type, with arraysize ``*`` (a character outside the
Basic Multilingual Plane takes two UTF-16 units, so a declared maximum could
be exceeded).  ``unicodeChar`` is written as UTF-16 (big-endian).  ``char``
is one byte per character: the service declares ``char`` only for text it
knows to be ASCII (:func:`.values.vouched_text_columns`), because astropy, and
with it pyvo, decodes ``char`` in binary serializations as ASCII and would
fail on "Ω Cen" or "Béla".  A writer given non-ASCII ``char`` anyway writes
UTF-8, which is what VOTable 1.6 is to make ``char`` mean.  Timestamps are
ASCII and stay ``char``.  NULLs of every type are expressed only by the
bitmap, so no magic values are needed.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import Any

import numpy as np

from adql import ResultColumn

from .base import ResultInfo
from .values import ColumnLayout, Kind, column_layout, timestamp_text
from .votable import votable_head, votable_tail

__all__ = ["Binary2Writer", "binary2_field_type"]

_NUMPY_TYPES = {
    "short": ">i2",
    "int": ">i4",
    "long": ">i8",
    "float": ">f4",
    "double": ">f8",
    "unsignedByte": "u1",
    "boolean": "S1",
}
_STRUCT_CODES = {"short": "h", "int": "i", "long": "q", "float": "f", "double": "d", "unsignedByte": "B"}
_BOOLEAN_BYTES = {True: b"T", False: b"F"}
_LINE_BYTES = 57
_LINE_CHARACTERS = 76

FixedValues = Callable[[tuple[Any, ...], bool], Any]
"""Values of a fixed-width column, ready to assign to a numpy field; the flag says NULLs are present."""
VariableValues = Callable[[tuple[Any, ...]], tuple[Any, list[bytes]]]
"""Element counts and encoded bytes of a variable-length column."""


def binary2_field_type(layout: ColumnLayout) -> tuple[str, str | None]:
    """The datatype and arraysize a BINARY2 FIELD declares (text: its ``char`` or ``unicodeChar``, any length)."""
    if layout.kind is Kind.TEXT:
        return layout.datatype, "*"
    if layout.kind is Kind.TIMESTAMP:
        return "char", "*"
    if layout.kind is Kind.VARIABLE_ARRAY:
        return layout.datatype, layout.column.arraysize or "*"
    return layout.datatype, layout.column.arraysize if layout.kind is Kind.FIXED_ARRAY else None


def _fixed_values(layout: ColumnLayout) -> FixedValues:
    if layout.kind is Kind.BOOLEAN:
        return lambda values, _nulls: [_BOOLEAN_BYTES.get(v, b"?") for v in values]
    if layout.kind is Kind.FIXED_ARRAY:
        fill = [float("nan") if layout.is_float else 0] * (layout.count or 0)
        return lambda values, nulls: [fill if v is None else v for v in values] if nulls else values
    if layout.kind is Kind.FLOAT:
        return lambda values, _nulls: values  # numpy reads None as NaN; the bitmap marks it NULL
    return lambda values, nulls: [0 if v is None else v for v in values] if nulls else values


def _unicode_values(values: tuple[Any, ...]) -> tuple[Any, list[bytes]]:
    encoded = [b"" if v is None else (v if type(v) is str else str(v)).encode("utf_16_be") for v in values]
    return np.fromiter(map(len, encoded), np.int32, len(encoded)) >> 1, encoded


def _char_values(values: tuple[Any, ...]) -> tuple[Any, list[bytes]]:
    encoded = [b"" if v is None else (v if type(v) is str else str(v)).encode() for v in values]
    return np.fromiter(map(len, encoded), np.int32, len(encoded)), encoded


def _timestamp_values(values: tuple[Any, ...]) -> tuple[Any, list[bytes]]:
    encoded = [b"" if v is None else timestamp_text(v).encode("ascii") for v in values]
    return np.fromiter(map(len, encoded), np.int32, len(encoded)), encoded


def _array_values(layout: ColumnLayout) -> VariableValues:
    code = _STRUCT_CODES[layout.datatype]
    structs: dict[int, struct.Struct] = {}

    def pack(value: list[Any]) -> bytes:
        size = len(value)
        packer = structs.get(size)
        if packer is None:
            packer = structs[size] = struct.Struct(f">{size}{code}")
        try:
            return packer.pack(*value)
        except struct.error:  # NULL elements, Decimals
            return packer.pack(*(float("nan") if e is None else float(e) if layout.is_float else int(e) for e in value))

    def encode(values: tuple[Any, ...]) -> tuple[Any, list[bytes]]:
        counts = [0 if v is None else len(v) for v in values]
        return counts, [b"" if v is None else pack(v) for v in values]

    return encode


def _row_bytes(structure: np.ndarray) -> list[bytes]:
    """The bytes of each element of a structured array (a ``void`` view keeps trailing zero bytes)."""
    return structure.view(np.dtype((np.void, structure.dtype.itemsize))).tolist()


class _Segment:
    """Fixed-width fields between two variable-length ones, as one numpy structure."""

    def __init__(self) -> None:
        self.fields: list[tuple[Any, ...]] = []
        self.dtype = np.dtype([])

    def seal(self) -> None:
        self.dtype = np.dtype(self.fields)


class Binary2Writer:
    """A VOTable in the BINARY2 serialization: rows as a base64 stream."""

    def __init__(self, columns: Sequence[ResultColumn], info: ResultInfo) -> None:
        self._layouts = [column_layout(column) for column in columns]
        self._info = info
        self._carry = b""
        # (segment, numpy field, column index, converter) of every column
        self._fixed: list[tuple[int, str, int, FixedValues]] = []
        self._variable: list[tuple[int, str, int, VariableValues]] = []
        segment = _Segment()
        segment.fields.append(("nulls", "u1", ((len(columns) + 7) // 8,)))
        self._segments = [segment]
        for index, layout in enumerate(self._layouts):
            if layout.kind in (Kind.TEXT, Kind.TIMESTAMP, Kind.VARIABLE_ARRAY):
                segment.fields.append((f"n{index}", ">i4"))
                if layout.kind is Kind.TEXT:
                    encode: VariableValues = _unicode_values if layout.datatype == "unicodeChar" else _char_values
                elif layout.kind is Kind.TIMESTAMP:
                    encode = _timestamp_values
                else:
                    encode = _array_values(layout)
                self._variable.append((len(self._segments) - 1, f"n{index}", index, encode))
                segment = _Segment()
                self._segments.append(segment)
            else:
                shape = (layout.count,) if layout.kind is Kind.FIXED_ARRAY else ()
                segment.fields.append((f"c{index}", _NUMPY_TYPES[layout.datatype], shape))
                self._fixed.append((len(self._segments) - 1, f"c{index}", index, _fixed_values(layout)))
        for segment in self._segments:
            segment.seal()

    def begin(self) -> bytes:
        """The document head, up to the opening of the base64 stream."""
        head = votable_head(self._layouts, self._info, binary2_field_type)
        return (head + '<DATA><BINARY2><STREAM encoding="base64">\n').encode()

    def encode_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """The raw (not yet base64) BINARY2 bytes of a batch of rows."""
        count = len(rows)
        columns = list(zip(*rows, strict=True))
        structures = [np.zeros(count, segment.dtype) for segment in self._segments]
        nulls = np.zeros((count, max(len(self._layouts), 1)), dtype=bool)
        for index, values in enumerate(columns):
            if None in values:
                nulls[:, index] = [v is None for v in values]
        has_nulls = nulls.any(axis=0)
        for segment, name, index, values_of in self._fixed:
            structures[segment][name] = values_of(columns[index], bool(has_nulls[index]))
        pieces: list[list[bytes]] = []
        for segment, name, index, encode in self._variable:
            counts, encoded = encode(columns[index])
            structures[segment][name] = counts
            pieces.append(encoded)
        structures[0]["nulls"] = np.packbits(nulls, axis=1)[:, : structures[0]["nulls"].shape[1]]
        if not pieces:
            return structures[0].tobytes()
        # Segment i ends with the count of variable field i, whose bytes follow it;
        # only the last segment (after the last variable field) may be empty.
        runs = list(chain.from_iterable(zip(map(_row_bytes, structures), pieces, strict=False)))
        if structures[-1].dtype.itemsize:
            runs.append(_row_bytes(structures[-1]))
        return b"".join(chain.from_iterable(zip(*runs, strict=True)))

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """Whole lines of the base64 stream; the bytes of an incomplete line wait for the next batch."""
        if not rows:
            return b""
        data = self._carry + self.encode_rows(rows)
        cut = len(data) - len(data) % _LINE_BYTES
        self._carry = data[cut:]
        if not cut:
            return b""
        encoded = np.frombuffer(base64.b64encode(memoryview(data)[:cut]), np.uint8).reshape(-1, _LINE_CHARACTERS)
        lines = np.empty((encoded.shape[0], _LINE_CHARACTERS + 1), np.uint8)
        lines[:, :-1] = encoded
        lines[:, -1] = ord("\n")
        return lines.tobytes()

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """The last line of the stream (with its padding) and the end of the document."""
        tail = base64.b64encode(self._carry) + b"\n" if self._carry else b""
        self._carry = b""
        yield tail + ("</STREAM></BINARY2></DATA>\n" + votable_tail(overflow)).encode()

    def close(self) -> None:
        """Nothing to release."""
