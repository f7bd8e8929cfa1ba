"""Encode whole Arrow tables or DataFrames as PostgreSQL binary COPY data, vectorised, and stream them.

psycopg's ``Copy.write_row`` needs every value as a Python object, one call per row, which caps
bulk loads well below what the server ingests.  Here a batch is encoded one column at a time:

1. each column becomes a numpy array of its values (strings: Arrow's UTF-8 bytes and offsets)
   plus a validity mask, checked against the range of its PostgreSQL type;
2. rows are laid out densely in a packed numpy structured array (field count, then a length
   word and a big-endian value per column, strings padded to their longest value), filled one
   field at a time by numpy's byte-swapping casts;
3. the bytes of NULL values and of string padding are dropped with one byte mask (Arrow's
   ``filter``, which copies long kept runs at once), leaving the variable-length wire rows;
4. a string column too uneven to pad splits the row there: its bytes are placed between the
   compacted pieces with one vectorised scatter.

:func:`copy_binary_into` encodes and streams in one go.  :func:`encode_copy_rows` also notes
where each row ends, so that rows encoded once can be sent in runs to several tables
(:func:`copy_encoded_into`), as the loader does with the chunks of a batch.

NULL rule: Arrow nulls and pandas ``None``/``NA``/``NaT`` become SQL NULL.  NaN stays a NaN value
in numpy float columns and Arrow columns; pandas' nullable ``Float64`` folds NaN into NA, so
there it is NULL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.copy import LibpqWriter, QueuedLibpqWriter

from dms_db.errors import InternalError, UserError

Batch = pa.Table | pa.RecordBatch | pd.DataFrame  # what the encoder takes

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
COPY_TRAILER = b"\xff\xff"  # a field count of -1
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's zero, in microseconds since 1970
_MIN_UNIX_US = -211_813_488_000_000_000 + _PG_EPOCH_US  # PostgreSQL's first timestamp, 4714-11-24 BC
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
_SLICE_BYTES = 4 << 20  # dense rows encoded at a time: a few MiB stay in cache between passes
_PAD_SLACK_BYTES = 16  # a string is padded inline if that wastes at most its bytes plus this per row
_PIECE_ROWS = 4_096, 65_536  # rows of copy_binary_into's first and largest pieces: start soon, then go fast

# PostgreSQL type -> big-endian numpy dtype of its binary value; None for UTF-8 text.
_WIRE_TYPES: dict[str, np.dtype | None] = {"bigint": np.dtype(">i8"), "integer": np.dtype(">i4")}
_WIRE_TYPES |= {"smallint": np.dtype(">i2"), "double precision": np.dtype(">f8"), "real": np.dtype(">f4")}
_WIRE_TYPES |= {"boolean": np.dtype("?"), "text": None, "varchar": None, "char": None}
_WIRE_TYPES |= {"timestamp": np.dtype(">i8"), "timestamptz": np.dtype(">i8")}
_ALIASES = {"int8": "bigint", "int4": "integer", "int": "integer", "int2": "smallint", "float8": "double precision"}
_ALIASES |= {"float4": "real", "bool": "boolean", "character varying": "varchar", "character": "char"}
_ALIASES |= {"bpchar": "char", "timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz"}
_TYPMOD = re.compile(r"^(varchar|char|character varying|character|bpchar|timestamp|timestamptz)\s*\(\s*\d+\s*\)$")
_ACCEPTS = {  # PostgreSQL type (timestamp, or its wire dtype's kind) -> test of the Arrow types it takes
    "timestamp": pa.types.is_timestamp,
    "b": pa.types.is_boolean,
    "i": pa.types.is_integer,
    "f": lambda arrow_type: pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type),
}


class CopyEncodingError(UserError):
    """A batch cannot be encoded for COPY: wrong columns, unsupported type or out-of-range value."""

    error_type = "CopyEncodingError"


def canonical_pg_type(pg_type: str) -> str | None:
    """The supported type that ``pg_type`` spells, or None if it is not supported.

    A length or precision, as in ``char(1)`` or ``timestamp(3)``, is dropped: the server applies
    it to the values it receives.

    >>> canonical_pg_type("Character Varying(32)"), canonical_pg_type("INT8"), canonical_pg_type("numeric")
    ('varchar', 'bigint', None)
    """
    name = " ".join(pg_type.lower().split())
    if match := _TYPMOD.match(name):
        name = match.group(1)
    name = _ALIASES.get(name, name)
    return name if name in _WIRE_TYPES else None


@dataclass(frozen=True)
class CopyColumn:
    """A target column of a COPY: its name and PostgreSQL type (checked on construction)."""

    name: str
    pg_type: str

    def __post_init__(self) -> None:
        if canonical_pg_type(self.pg_type) is None:
            raise CopyEncodingError(
                f"column {self.name!r}: type {self.pg_type!r} is not supported by the binary COPY encoder",
                hint=f"use one of {', '.join(_WIRE_TYPES)}",
            )


@dataclass(frozen=True)
class _Field:
    """One column ready to encode: its values (or UTF-8 bytes and offsets) and validity."""

    wire: np.dtype | None  # big-endian dtype of a fixed-width value; None for strings
    values: np.ndarray  # fixed width: one value per row; strings: the UTF-8 bytes of all rows
    valid: np.ndarray | None  # None when the column has no NULL
    offsets: np.ndarray | None = None  # strings: start of each row's bytes in ``values``, n + 1

    @cached_property
    def lengths(self) -> np.ndarray:
        """Byte length of each string (0 for NULL)."""
        return np.diff(self.offsets)

    def length_words(self, lo: int, hi: int) -> np.ndarray:
        """The length word of strings ``lo:hi``: their byte length, or -1 for NULL."""
        lengths = self.lengths[lo:hi]
        return lengths if self.valid is None else np.where(self.valid[lo:hi], lengths, -1)

    @property
    def data_bytes(self) -> int:
        """Value bytes this column adds to the payload."""
        if self.wire is None:
            return int(self.values.size)
        return (len(self.values) if self.valid is None else int(np.count_nonzero(self.valid))) * self.wire.itemsize


def _arrow_column(batch: Batch, name: str) -> pa.Array:
    """One column as a single Arrow array; a numpy float column keeps NaN as a value."""
    if isinstance(batch, pd.DataFrame):
        series = batch[name]
        numpy_float = isinstance(series.dtype, np.dtype) and series.dtype.kind == "f"
        array = pa.array(series.to_numpy() if numpy_float else series, from_pandas=not numpy_float)
    else:
        array = batch.column(name)
    if isinstance(array, pa.ChunkedArray):  # one chunk is used as it is: combining would copy it
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array  # pandas categoricals


def _check_range(name: str, bad: np.ndarray, values: np.ndarray, what: str, first_row: int) -> None:
    """Raise for the first True of ``bad``, naming the column, the row and its value."""
    if bad.any():
        row = int(np.argmax(bad))
        value = values[row].item()
        raise CopyEncodingError(
            f"column {name!r}: row {first_row + row} (counting from 0): value {value!r} is out of range for {what}"
        )


def _prepare(column: CopyColumn, array: pa.Array, first_row: int) -> _Field:
    """Convert and check one Arrow column for its PostgreSQL type.

    NULL slots are filled with zeros or empty strings first: Arrow leaves their contents
    undefined, and they must neither fail a range check nor add bytes.
    """
    name, pg_type, atype, n = column.name, canonical_pg_type(column.pg_type), array.type, len(array)
    wire = _WIRE_TYPES[pg_type]
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    if pa.types.is_null(atype):  # e.g. a pandas object column holding only None
        if wire is None:
            return _Field(None, np.zeros(0, np.uint8), valid, np.zeros(n + 1, np.int64))
        return _Field(wire, np.zeros(n, wire.newbyteorder("=")), valid)
    mismatch = f"column {name!r}: Arrow type {atype} cannot be stored as {column.pg_type}"
    if wire is None:
        if not (pa.types.is_string(atype) or pa.types.is_large_string(atype) or pa.types.is_string_view(atype)):
            raise CopyEncodingError(mismatch)
        strings = array.cast(pa.large_string())
        strings = pc.fill_null(strings, "") if valid is not None else strings
        _, offsets, data = strings.buffers()
        offsets = np.frombuffer(offsets, np.int64)[strings.offset : strings.offset + n + 1]
        data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        data, offsets = data[offsets[0] : offsets[-1]], offsets - offsets[0]
        if (nul := np.flatnonzero(data == 0)).size:
            row = first_row + int(np.searchsorted(offsets, nul[0], side="right")) - 1
            raise CopyEncodingError(f"column {name!r}: row {row} (counting from 0): text cannot hold its NUL character")
        return _Field(None, data, valid, offsets)

    if not _ACCEPTS["timestamp" if pg_type.startswith("timestamp") else wire.kind](atype):
        floats_for_ints = wire.kind == "i" and pa.types.is_floating(atype)
        raise CopyEncodingError(mismatch, hint="use pandas 'Int64' if values are missing" if floats_for_ints else None)
    filled = pc.fill_null(array, False if pa.types.is_boolean(atype) else 0) if valid is not None else array
    if pg_type.startswith("timestamp"):
        return _Field(wire, _timestamp_us(name, filled, first_row), valid)
    values = filled.to_numpy(zero_copy_only=False)
    if wire.kind == "i" and not np.can_cast(values.dtype, wire):
        info = np.iinfo(wire)
        what = f"{pg_type} [{info.min}, {info.max}]"
        _check_range(name, (values < info.min) | (values > info.max), values, what, first_row)
    if pg_type == "real" and values.dtype.itemsize > 4:
        with np.errstate(over="ignore"):  # as PostgreSQL does, refuse finite values beyond float4
            _check_range(name, np.isinf(values.astype(np.float32)) & np.isfinite(values), values, "real", first_row)
    return _Field(wire, values, valid)


def _timestamp_us(name: str, array: pa.Array, first_row: int) -> np.ndarray:
    """Microseconds since 2000-01-01 UTC of an Arrow timestamp array.

    A tz-aware value is its UTC instant; a naive one is taken as UTC.  Nanoseconds are rounded
    to the nearest microsecond, halves upwards (PostgreSQL has no finer resolution).
    """
    raw = array.view(pa.int64()).to_numpy()
    if array.type.unit == "ns":  # its whole range, 1677 to 2262, is valid in PostgreSQL
        micros, rest = np.divmod(raw, 1000)
        return micros + (rest >= 500) - _PG_EPOCH_US
    factor = _UNIT_US[array.type.unit]
    low, high = -(-_MIN_UNIX_US // factor), (2**63 - 1) // factor  # the limits in the input's unit
    what = f"timestamp[{array.type.unit}] (4714 BC to 294276 AD)"
    _check_range(name, (raw < low) | (raw > high), raw, what, first_row)
    return raw * factor - _PG_EPOCH_US


@dataclass(frozen=True)
class _Segment:
    """Consecutive fields laid out as one packed structured row (see the module docstring).

    A segment ends at a string too uneven to pad: its length word ends the segment and its
    bytes go after it.
    """

    dtype: np.dtype  # the dense row: field count (first segment only), length words, values
    mask_dtype: np.dtype  # same offsets; a field is 0x01 in every byte that is kept
    template: np.ndarray  # a dense row holding the field count and the fixed-width length words
    fixed: tuple[int, ...]  # indices of the fixed-width fields
    padded: tuple[tuple[int, int], ...]  # (index, padded width) of the strings stored inline
    tail: int | None  # index of the string whose bytes follow this segment
    masked: bool  # whether some bytes of the dense rows may have to be dropped


def _layout(fields: Sequence[_Field]) -> list[_Segment]:
    """Group fields into segments, padding a string inline when that at most doubles its size."""
    segments: list[_Segment] = []
    entries: list[tuple[str, object, object, bytes]] = [("count", ">i2", "<u2", len(fields).to_bytes(2, "big"))]
    fixed: list[int] = []
    padded: list[tuple[int, int]] = []

    def close(tail: int | None) -> None:
        offsets = np.cumsum([0] + [len(entry[3]) for entry in entries])
        layout = {"names": [e[0] for e in entries], "offsets": offsets[:-1].tolist(), "itemsize": int(offsets[-1])}
        masked = any(fields[i].valid is not None for i in fixed) or any(
            fields[i].valid is not None or int(fields[i].lengths.min(initial=width)) < width for i, width in padded
        )
        dtype, mask_dtype = (np.dtype({**layout, "formats": [e[k] for e in entries]}) for k in (1, 2))
        template = np.frombuffer(b"".join(e[3] for e in entries), np.uint8)
        segments.append(_Segment(dtype, mask_dtype, template, tuple(fixed), tuple(padded), tail, masked))
        for part in (entries, fixed, padded):
            part.clear()

    for i, field in enumerate(fields):
        if field.wire is not None:
            width = field.wire.itemsize
            entries.append((f"l{i}", ">i4", "<u4", width.to_bytes(4, "big")))
            entries.append((f"v{i}", field.wire, f"<u{width}", bytes(width)))
            fixed.append(i)
            continue
        entries.append((f"l{i}", ">i4", "<u4", bytes(4)))
        rows, width = len(field.lengths), int(field.lengths.max(initial=0))
        if width * rows > 2 * field.values.size + _PAD_SLACK_BYTES * rows:
            close(tail=i)
            continue
        padded.append((i, width))
        if width:  # a column of empty strings and NULLs has just its length words
            entries.append((f"v{i}", ("u1", width), ("?", width), bytes(width)))
    if entries:
        close(tail=None)
    return segments


def _fill(
    segment: _Segment, fields: Sequence[_Field], lo: int, hi: int, dense: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Write rows ``lo:hi`` of a segment into ``dense``; return the kept bytes and each row's count."""
    rows, width_all = hi - lo, segment.dtype.itemsize
    dense.view(np.uint8).reshape(rows, width_all)[:] = segment.template
    kept = np.full(rows, width_all, np.int64)
    mask = np.ones(rows * width_all, np.uint8).view(segment.mask_dtype) if segment.masked else None
    for i in segment.fixed:
        field = fields[i]
        dense[f"v{i}"] = field.values[lo:hi]
        if field.valid is not None:
            valid, width = field.valid[lo:hi], field.wire.itemsize
            np.copyto(dense[f"l{i}"], -1, where=~valid)
            mask[f"v{i}"] = valid.astype(f"<u{width}") * int.from_bytes(b"\x01" * width, "little")
            kept -= width * ~valid
    for i, width in segment.padded:
        field = fields[i]
        dense[f"l{i}"] = field.length_words(lo, hi)
        if width:
            starts = field.offsets[lo:hi, None] + np.arange(width)
            dense[f"v{i}"] = field.values[np.minimum(starts, field.values.size - 1)]
            if mask is not None:  # else all strings have the same length
                mask[f"v{i}"] = np.arange(width) < field.lengths[lo:hi, None]
                kept -= width - field.lengths[lo:hi]
    if segment.tail is not None:
        dense[f"l{segment.tail}"] = fields[segment.tail].length_words(lo, hi)
    if mask is None:
        return dense.view(np.uint8), kept
    # Arrow's filter copies whole 64-byte blocks that are kept; numpy's boolean index tests every byte.
    bits = pa.py_buffer(np.packbits(mask.view(np.bool_), bitorder="little"))
    keep = pa.BooleanArray.from_buffers(pa.bool_(), rows * width_all, [None, bits])
    return pa.array(dense.view(np.uint8)).filter(keep).to_numpy(), kept


def _encode_rows(segments: list[_Segment], fields: Sequence[_Field], lo: int, hi: int, out: np.ndarray) -> int:
    """Encode rows ``lo:hi`` at the start of ``out``; return the number of bytes written."""
    rows = hi - lo
    if len(segments) == 1 and not segments[0].masked:  # all rows alike: fill the output in place
        size = rows * segments[0].dtype.itemsize
        _fill(segments[0], fields, lo, hi, out[:size].view(segments[0].dtype))
        return size
    pieces = []
    for segment in segments:
        pieces.append(_fill(segment, fields, lo, hi, np.empty(rows, segment.dtype)))
        if segment.tail is not None:
            field = fields[segment.tail]
            pieces.append((field.values[field.offsets[lo] : field.offsets[hi]], field.lengths[lo:hi]))
    if len(pieces) == 1:
        out[: pieces[0][0].size] = pieces[0][0]
        return pieces[0][0].size
    row_sizes = sum(lengths for _, lengths in pieces)
    starts = np.cumsum(row_sizes) - row_sizes
    for source, lengths in pieces:  # each row is its pieces end to end: scatter piece by piece
        if source.size:
            index = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
            index += np.arange(source.size)
            out[index] = source
        starts += lengths
    return int(row_sizes.sum())


def encode_copy_binary(
    table: Batch, columns: Sequence[CopyColumn], *, header: bool = True, trailer: bool = True
) -> memoryview:
    """Encode every row of ``table`` as PostgreSQL binary COPY data, fields in ``columns`` order.

    Parameters
    ----------
    table
        The batch; its column names must be exactly the names of ``columns`` (in any order), so
        that a forgotten or stray column fails here instead of shifting values between columns.
        Batches of about 10^5 rows encode fastest: the output is allocated per call.
    columns
        Target columns, in the order of the ``COPY ... (columns)`` list.
    header, trailer
        Whether to include the file header and the end marker: one COPY may be fed as
        header + rows, rows, ..., rows + trailer.

    Returns
    -------
    memoryview
        The payload, over one numpy buffer (never copied into ``bytes``).

    Raises
    ------
    CopyEncodingError
        Wrong columns, a column whose type does not fit its PostgreSQL type, an integer, real or
        timestamp out of range, or a NUL in a string; the message names the column and first bad row.
    """
    return _encode(table, columns, header, trailer, first_row=0)


@dataclass(frozen=True)
class EncodedRows:
    """Binary COPY rows, without header or trailer, and where each row ends.

    Any run of consecutive rows is then a zero-copy slice of one payload: a
    batch sorted by partition is encoded once and its slices are sent to each
    partition (and each replica).
    """

    payload: memoryview
    ends: np.ndarray  # byte offset just past each row

    def rows(self, first: int, count: int) -> memoryview:
        """The bytes of rows ``first`` to ``first + count - 1``."""
        start = int(self.ends[first - 1]) if first else 0
        return self.payload[start : int(self.ends[first + count - 1])] if count else self.payload[0:0]


def encode_copy_rows(table: Batch, columns: Sequence[CopyColumn], out: np.ndarray | None = None) -> EncodedRows:
    """Encode ``table`` like :func:`encode_copy_binary`, without header and trailer, noting where rows end.

    The rows are written at the start of ``out`` (bytes) when it is large enough, else into a
    new array: a caller encoding batch after batch can keep reusing one buffer, rather than
    have fresh memory faulted in each time.  Raises as :func:`encode_copy_binary` does.
    """
    fields = _fields(table, columns, first_row=0)
    payload = _encode_fields(fields, len(table), header=False, trailer=False, out=out)
    return EncodedRows(payload, np.cumsum(_row_sizes(fields, len(table))))


def _row_sizes(fields: Sequence[_Field], rows: int) -> np.ndarray:
    """Bytes of each encoded row: field count, a length word per field, the values that are not NULL."""
    sizes = np.full(rows, 2 + 4 * len(fields), np.int64)
    for field in fields:
        if field.wire is None:
            sizes += field.lengths  # NULL strings were emptied
        elif field.valid is None:
            sizes += field.wire.itemsize
        else:
            sizes += field.valid * field.wire.itemsize
    return sizes


def _encode(table: Batch, columns: Sequence[CopyColumn], header: bool, trailer: bool, first_row: int) -> memoryview:
    """:func:`encode_copy_binary` of a batch whose first row is row ``first_row`` of the caller's."""
    return _encode_fields(_fields(table, columns, first_row), len(table), header, trailer)


def _fields(table: Batch, columns: Sequence[CopyColumn], first_row: int) -> list[_Field]:
    """The columns of ``table`` prepared in ``columns`` order, after checking that the names match."""
    names = [column.name for column in columns]
    present = [str(name) for name in table.columns] if isinstance(table, pd.DataFrame) else table.column_names
    if len(set(names)) != len(names) or sorted(present) != sorted(names):
        raise CopyEncodingError(
            f"the batch has {len(present)} columns {present} but COPY expects {len(names)} columns {names}",
            hint=f"missing: {sorted(set(names) - set(present))}, unexpected: {sorted(set(present) - set(names))}; "
            "give exactly the COPY columns, each once",
        )
    return [_prepare(column, _arrow_column(table, column.name), first_row) for column in columns]


def _encode_fields(
    fields: Sequence[_Field], rows: int, header: bool, trailer: bool, out: np.ndarray | None = None
) -> memoryview:
    """The binary COPY bytes of ``rows`` rows of prepared fields, at the start of ``out`` if it is large enough."""
    segments = _layout(fields)
    size = rows * (2 + 4 * len(fields)) + sum(field.data_bytes for field in fields)
    size += len(COPY_HEADER) * header + len(COPY_TRAILER) * trailer
    out = out[:size] if out is not None and out.size >= size else np.empty(size, np.uint8)
    position = 0
    if header:
        out[: len(COPY_HEADER)] = np.frombuffer(COPY_HEADER, np.uint8)
        position = len(COPY_HEADER)
    scattered = sum(fields[segment.tail].values.size for segment in segments if segment.tail is not None)
    row_bytes = sum(segment.dtype.itemsize for segment in segments) + 9 * scattered // max(rows, 1)  # + 8-byte index
    step = max(1, _SLICE_BYTES // row_bytes)
    for lo in range(0, rows, step):
        position += _encode_rows(segments, fields, lo, min(lo + step, rows), out[position:])
    if trailer:
        out[position : position + 2] = np.frombuffer(COPY_TRAILER, np.uint8)
        position += 2
    if position != out.size:
        raise InternalError(f"binary COPY encoder wrote {position} bytes, expected {out.size}")
    return out.data


def copy_binary_into(
    conn: psycopg.Connection,
    qualified_table: sql.Composable,
    columns: Sequence[CopyColumn],
    batches: Iterable[Batch],
) -> int:
    """Stream ``batches`` into ``qualified_table`` with one binary COPY; return the rows loaded.

    Batches are encoded in pieces (small at first, so that the server starts at once, then up to
    ``_PIECE_ROWS[1]`` rows), and a psycopg writer thread sends each piece while the next one is
    encoded: the server works while the client encodes, and buffers stay small.
    The COPY runs in ``conn.transaction()``: all batches load or none does (as a savepoint when
    the caller has a transaction open).  Strings are sent as UTF-8 without conversion, so the
    connection's client encoding must be UTF-8.
    """
    loaded, piece = 0, _PIECE_ROWS[0]
    with _copy_stream(conn, qualified_table, columns, savepoint=True, background_send=True) as copy:
        for number, batch in enumerate(batches):
            by_row = batch.iloc if isinstance(batch, pd.DataFrame) else batch
            lo = 0
            while lo < len(batch):
                try:
                    copy.write(_encode(by_row[lo : lo + piece], columns, False, False, first_row=lo))
                except CopyEncodingError as error:  # rows count from 0 in each batch: say which batch
                    message = f"batch {number} (counting from 0): {error.message}"
                    raise CopyEncodingError(message, hint=error.hint) from None
                lo, piece = lo + piece, min(2 * piece, _PIECE_ROWS[1])
            loaded += len(batch)
    return loaded


def copy_encoded_into(
    conn: psycopg.Connection,
    qualified_table: sql.Composable,
    columns: Sequence[CopyColumn],
    rows: Iterable[memoryview],
    *,
    savepoint: bool = True,
    background_send: bool = True,
) -> None:
    """One binary COPY of rows encoded beforehand (:func:`encode_copy_rows`) in ``columns`` order.

    As :func:`copy_binary_into`, in a savepoint and with a psycopg writer thread, unless:

    * ``savepoint=False``: the COPY runs straight in the caller's open transaction, which a
      failure aborts; for callers that give up the whole transaction on any error anyway, and
      would otherwise spend a subtransaction per COPY;
    * ``background_send=False``: the calling thread sends the rows itself; for callers that run
      several COPYs in threads of their own, where one more thread per COPY adds nothing.
    """
    with _copy_stream(conn, qualified_table, columns, savepoint, background_send) as copy:
        for piece in rows:
            copy.write(piece)


@contextmanager
def _copy_stream(
    conn: psycopg.Connection,
    qualified_table: sql.Composable,
    columns: Sequence[CopyColumn],
    savepoint: bool,
    background_send: bool,
) -> Iterator[psycopg.Copy]:
    """An open binary COPY into ``qualified_table``: header written, trailer written on success."""
    if conn.info.encoding != "utf-8":
        raise CopyEncodingError(
            f"the connection's client encoding is {conn.info.encoding}, but the encoder sends UTF-8",
            hint="connect with client_encoding=UTF8",
        )
    if not savepoint and conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        raise InternalError("a COPY without savepoint needs an open transaction")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        qualified_table, sql.SQL(", ").join(sql.Identifier(column.name) for column in columns)
    )
    scope = conn.transaction() if savepoint else nullcontext()
    with scope, conn.cursor() as cursor:
        writer = QueuedLibpqWriter(cursor) if background_send else LibpqWriter(cursor)
        with cursor.copy(statement, writer=writer) as copy:
            copy.write(COPY_HEADER)
            yield copy
            copy.write(COPY_TRAILER)
