"""FITS results: a binary table extension, spooled to a temporary file until its header can be written.

A FITS header must state the number of rows (NAXIS2), the width of every
string column and the size of the heap before the first row, and none of these
is known until the result ends.  So the rows are spooled as an Arrow IPC
stream to an anonymous temporary file (memory holds one batch) while the
string widths, the longest variable-length array and the heap size are
tracked; :meth:`FitsWriter.finish` then writes the header (built by astropy)
and streams the spool back a batch at a time, converted to big-endian FITS
rows with numpy, followed by the heap and the padding to 2880 bytes.

Column mapping: long K, int J, short and unsignedByte I, double D, float E,
boolean L (NULL is the zero byte, which astropy reads as False unless asked
for ``logical_as_bytes``), text and timestamps A with the width of the
longest value in UTF-8 bytes (astropy decodes them as UTF-8, so "Ω Cen" reads
back), points and circles as ``2D``/``3D``, polygons as variable-length arrays
``PD(max)`` in the heap (``QD`` beyond 2 GiB).  NULL integers use TNULLn (the type's most negative
value), NULL floats are NaN, NULL strings and NULL polygons are empty.
The extension header carries QUERY (long strings continue on CONTINUE cards),
``HIERARCH QUERY_STATUS`` (OK or OVERFLOW) and the extra infos as HIERARCH
cards; column descriptions and UCDs go in TCOMMn and TUCDn as STILTS writes
them.  Header text must be printable ASCII, so anything else is escaped.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy.io import fits

from adql import ResultColumn

from .arrow import column_array
from .base import ResultInfo, query_status
from .values import ColumnLayout, Kind, column_layout, timestamp_text, unique_names

__all__ = ["FitsWriter"]

BLOCK = 2880
"""FITS files are made of blocks of this many bytes."""

# unsignedByte is widened to I: as B, TNULL would have to take one of its 256 values.
_CODES = {"long": "K", "int": "J", "short": "I", "unsignedByte": "I", "double": "D", "float": "E"}
_NUMPY_TYPES = {"long": ">i8", "int": ">i4", "short": ">i2", "unsignedByte": ">i2", "double": ">f8", "float": ">f4"}
_ARROW_TYPES = {
    "long": pa.int64(),
    "int": pa.int32(),
    "short": pa.int16(),
    "unsignedByte": pa.uint8(),
    "double": pa.float64(),
    "float": pa.float32(),
}
_NULLS = {"long": -(2**63), "int": -(2**31), "short": -(2**15), "unsignedByte": -(2**15)}
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_NOT_KEYWORD = re.compile(r"[^A-Za-z0-9_\-]")


def _header_text(text: str) -> str:
    """Printable ASCII for a header value: non-ASCII escaped, control characters as spaces."""
    return _NOT_PRINTABLE.sub(" ", text.encode("ascii", "backslashreplace").decode("ascii"))


def _spool_type(layout: ColumnLayout) -> pa.DataType:
    if layout.kind in (Kind.TEXT, Kind.TIMESTAMP):
        return pa.string()
    if layout.kind is Kind.BOOLEAN:
        return pa.bool_()
    element = _ARROW_TYPES[layout.datatype]
    if layout.kind is Kind.FIXED_ARRAY:
        return pa.list_(element, layout.count or 0)
    if layout.kind is Kind.VARIABLE_ARRAY:
        return pa.list_(element)
    return element


class FitsWriter:
    """A FITS file with an empty primary HDU and one binary table extension."""

    def __init__(self, columns: Sequence[ResultColumn], info: ResultInfo) -> None:
        self._layouts = [column_layout(column) for column in columns]
        self._info = info
        self._schema = pa.schema([(f"c{i}", _spool_type(layout)) for i, layout in enumerate(self._layouts)])
        self._spool: IO[bytes] | None = None
        self._spool_writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._rows = 0
        self._widths = [0] * len(self._layouts)
        """Longest text in UTF-8 bytes, or most elements of a variable array, per column."""
        self._heap_bytes = 0

    @property
    def _descriptor(self) -> str:
        """P descriptors (32-bit count and offset) unless the heap outgrows them."""
        return "Q" if self._heap_bytes >= 2**31 else "P"

    def begin(self) -> bytes:
        """Nothing yet: the header needs the row count."""
        return b""

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> bytes:
        """Spool a batch, noting string widths and array lengths."""
        if not rows:
            return b""
        arrays = []
        for index, (layout, values) in enumerate(zip(self._layouts, zip(*rows, strict=True), strict=True)):
            if layout.kind is Kind.TIMESTAMP:
                values = [None if v is None else timestamp_text(v) for v in values]
            array = column_array(values, self._schema.field(index).type)
            if layout.kind in (Kind.TEXT, Kind.TIMESTAMP):
                longest = pc.max(pc.binary_length(array)).as_py() or 0
                self._widths[index] = max(self._widths[index], longest)
            elif layout.kind is Kind.VARIABLE_ARRAY:
                lengths = pc.list_value_length(array)
                self._widths[index] = max(self._widths[index], pc.max(lengths).as_py() or 0)
                self._heap_bytes += (pc.sum(lengths).as_py() or 0) * np.dtype(_NUMPY_TYPES[layout.datatype]).itemsize
            arrays.append(array)
        if self._spool_writer is None:
            # Not a context manager: the file outlives this call, close() removes it.
            self._spool = tempfile.TemporaryFile(prefix="dms-db-fits-")  # noqa: SIM115
            self._spool_writer = pa.ipc.new_stream(self._spool, self._schema)
        self._spool_writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._rows += len(rows)
        return b""

    def _table_header(self, overflow: bool) -> fits.Header:
        names = unique_names([_header_text(layout.column.name) for layout in self._layouts], case_sensitive=False)
        fits_columns = []
        for layout, name, width in zip(self._layouts, names, self._widths, strict=True):
            column = layout.column
            null = None
            if layout.kind in (Kind.TEXT, Kind.TIMESTAMP):
                form = f"{max(width, 1)}A"
            elif layout.kind is Kind.BOOLEAN:
                form = "L"
            elif layout.kind is Kind.VARIABLE_ARRAY:
                form = f"{self._descriptor}{_CODES[layout.datatype]}()"
            else:
                form = f"{layout.count or ''}{_CODES[layout.datatype]}"
                null = _NULLS.get(layout.datatype)
            unit = _header_text(column.unit) if column.unit else None
            fits_columns.append(fits.Column(name=name, format=form, unit=unit, null=null))
        header = fits.BinTableHDU.from_columns(fits_columns, nrows=0).header
        header["NAXIS2"] = self._rows
        header["PCOUNT"] = self._heap_bytes
        for number, (layout, width) in enumerate(zip(self._layouts, self._widths, strict=True), start=1):
            if layout.kind is Kind.VARIABLE_ARRAY:
                header[f"TFORM{number}"] = f"{self._descriptor}{_CODES[layout.datatype]}({width})"
            if layout.column.description:
                header[f"TCOMM{number}"] = _header_text(layout.column.description)
            if layout.column.ucd:
                header[f"TUCD{number}"] = _header_text(layout.column.ucd)
        header["HIERARCH QUERY_STATUS"] = query_status(overflow)
        if self._info.query is not None:
            header["QUERY"] = _header_text(self._info.query)
        for name, value in self._info.infos:
            keyword = _NOT_KEYWORD.sub("_", name)
            # Short names could overwrite structural keywords (NAXIS...).
            keyword = keyword if len(keyword) > 8 else f"INFO_{keyword}"
            if keyword.upper() != "QUERY_STATUS":
                header[f"HIERARCH {keyword}"] = _header_text(value)
        return header

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if self._spool is None:
            return
        self._spool.seek(0)
        yield from pa.ipc.open_stream(self._spool)

    def _encode_rows(self, batch: pa.RecordBatch, heap_offset: int) -> tuple[bytes, int]:
        """The FITS rows of a spooled batch, and the heap offset after its arrays."""
        dtype = []
        for index, layout in enumerate(self._layouts):
            if layout.kind in (Kind.TEXT, Kind.TIMESTAMP):
                dtype.append((f"c{index}", f"S{max(self._widths[index], 1)}"))
            elif layout.kind is Kind.BOOLEAN:
                dtype.append((f"c{index}", "u1"))
            elif layout.kind is Kind.VARIABLE_ARRAY:
                dtype.append((f"c{index}", ">i8" if self._descriptor == "Q" else ">i4", (2,)))
            else:
                dtype.append((f"c{index}", _NUMPY_TYPES[layout.datatype], (layout.count,) if layout.count else ()))
        rows = np.zeros(batch.num_rows, dtype=dtype)
        for index, (layout, array) in enumerate(zip(self._layouts, batch.columns, strict=True)):
            field = f"c{index}"
            nulls = array.is_null().to_numpy(zero_copy_only=False)
            if layout.kind in (Kind.TEXT, Kind.TIMESTAMP):
                rows[field] = array.fill_null("").cast(pa.binary()).to_numpy(zero_copy_only=False)
            elif layout.kind is Kind.BOOLEAN:
                values = array.fill_null(False).to_numpy(zero_copy_only=False)
                rows[field] = np.where(nulls, 0, np.where(values, ord("T"), ord("F")))
            elif layout.kind is Kind.VARIABLE_ARRAY:
                itemsize = np.dtype(_NUMPY_TYPES[layout.datatype]).itemsize
                counts = pc.list_value_length(array).fill_null(0).to_numpy().astype(np.int64)
                ends = heap_offset + np.cumsum(counts * itemsize)
                rows[field][:, 0] = counts
                rows[field][:, 1] = ends - counts * itemsize
                heap_offset = int(ends[-1]) if len(ends) else heap_offset
            elif layout.kind is Kind.FIXED_ARRAY:
                count = layout.count or 0
                fill = np.nan if layout.is_float else _NULLS[layout.datatype]
                # The child array keeps a slot of ``count`` elements for a NULL array too.
                flat = array.values.slice(array.offset * count, len(array) * count).fill_null(fill)
                values = flat.to_numpy(zero_copy_only=False).reshape(len(array), count)
                rows[field] = np.where(nulls[:, None], fill, values)
            elif layout.is_float:
                rows[field] = array.to_numpy(zero_copy_only=False)
            else:
                rows[field] = array.fill_null(_NULLS[layout.datatype]).to_numpy(zero_copy_only=False)
        return rows.tobytes(), heap_offset

    def _encode_heap(self, batch: pa.RecordBatch) -> bytes:
        """The variable-length arrays of a spooled batch, column after column as their descriptors say."""
        parts = []
        for layout, array in zip(self._layouts, batch.columns, strict=True):
            if layout.kind is Kind.VARIABLE_ARRAY:
                fill = np.nan if layout.is_float else _NULLS[layout.datatype]
                values = array.flatten().fill_null(fill).to_numpy(zero_copy_only=False)
                parts.append(values.astype(_NUMPY_TYPES[layout.datatype]).tobytes())
        return b"".join(parts)

    def finish(self, *, overflow: bool) -> Iterator[bytes]:
        """The primary HDU, the table header, the spooled rows, the heap and the padding."""
        if self._spool_writer is not None:
            self._spool_writer.close()
            self._spool_writer = None
        yield fits.PrimaryHDU().header.tostring().encode("ascii")
        yield self._table_header(overflow).tostring().encode("ascii")
        written, heap_offset = 0, 0
        for batch in self._batches():
            data, heap_offset = self._encode_rows(batch, heap_offset)
            written += len(data)
            yield data
        if self._heap_bytes:
            for batch in self._batches():
                data = self._encode_heap(batch)
                written += len(data)
                yield data
        if written % BLOCK:
            yield bytes(BLOCK - written % BLOCK)
        self.close()

    def close(self) -> None:
        """Remove the spool file (an anonymous file: closing it is enough)."""
        self._spool_writer = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None
