"""Read the tables of a TAP UPLOAD (VOTable or CSV) into :class:`UploadedTable` values.

Files are read with astropy, as users' own tools would write them.  Limits
on bytes and rows keep one request from filling the coordinator; every
problem names the upload and says how to fix it.  Column types come from the
VOTable FIELDs, or for CSV from the values (integers, floats, booleans,
text).  A column whose UCD is ``pos.eq.ra;meta.main`` / ``pos.eq.dec;meta.main``
(or, failing that, a column called ``ra`` / ``dec``) is the table's position,
which lets a crossmatch ask only the chunks near the uploaded positions.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.io import ascii as astropy_ascii
from astropy.io import votable
from astropy.table import Table
from starlette.datastructures import UploadFile

from adql import ColumnInfo
from api.tap.params import TapParameterError, TapParameters, UploadReference
from dms_db.errors import UserError
from sharding.coordinator.uploads import UploadedTable

__all__ = ["UploadError", "read_uploads", "uploaded_table"]

_DATATYPES = {
    "b": "boolean",
    "i1": "short",
    "u1": "unsignedByte",
    "i2": "short",
    "u2": "int",
    "i4": "int",
    "u4": "long",
    "i8": "long",
    "f2": "float",
    "f4": "float",
    "f8": "double",
}


class UploadError(UserError):
    """An uploaded table cannot be used: too large, unreadable, or of a shape the service cannot hold."""

    error_type = "UploadError"

    def __init__(self, message: str, *, hint: str | None = None, too_large: bool = False) -> None:
        super().__init__(message, hint=hint)
        if too_large:
            self.http_status = 413


async def read_uploads(
    parameters: TapParameters, references: Sequence[UploadReference], *, max_bytes: int, max_rows: int
) -> list[UploadedTable]:
    """Read every table an UPLOAD parameter names from the request's multipart parts."""
    tables = []
    for reference in references:
        scheme, _, part = reference.source.partition(":")
        if scheme.lower() != "param" or not part:
            raise TapParameterError(
                f"UPLOAD {reference.name} refers to {reference.source!r}; this service reads uploads only from "
                "parts of the request itself",
                hint=f"send the table as a multipart part and write UPLOAD={reference.name},param:<part name>",
            )
        upload = parameters.files.get(part)
        if upload is None:
            raise TapParameterError(
                f"UPLOAD {reference.name} refers to the part {part!r}, which the request does not contain",
                hint="send the table as a multipart/form-data file part of that name",
            )
        content = await _read_limited(upload, reference.name, max_bytes)
        tables.append(uploaded_table(reference.name, content, max_rows=max_rows))
    return tables


async def _read_limited(upload: UploadFile, name: str, max_bytes: int) -> bytes:
    content = await upload.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise UploadError(
            f"the upload {name} is larger than this service's limit of {max_bytes:,} bytes",
            hint="upload fewer rows or columns, or split the query",
            too_large=True,
        )
    return content


def uploaded_table(name: str, content: bytes, *, max_rows: int) -> UploadedTable:
    """Parse one uploaded file (VOTable, or CSV with a header line) into an :class:`UploadedTable`."""
    table, fields = _parse(name, content)
    if len(table) > max_rows:
        raise UploadError(
            f"the upload {name} has {len(table):,} rows, more than this service's limit of {max_rows:,}",
            hint="upload fewer rows, or split the table over several queries",
            too_large=True,
        )
    columns = tuple(_column_info(name, table, column_name, fields.get(column_name)) for column_name in table.colnames)
    rows = _rows(table, columns)
    ra, dec = _position_columns(columns)
    return UploadedTable(name, columns, rows, ra_column=ra, dec_column=dec)


def _parse(name: str, content: bytes) -> tuple[Table, dict[str, Any]]:
    head = content.lstrip()[:200].lower()
    if not head:
        raise UploadError(f"the upload {name} is empty", hint="send a VOTable or a CSV file with a header line")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if head.startswith(b"<?xml") or head.startswith(b"<votable"):
                document = votable.parse(io.BytesIO(content), verify="ignore")
                resource_table = document.get_first_table()
                fields = {field.name: field for field in resource_table.fields}
                return resource_table.to_table(use_names_over_ids=True), fields
            text = content.decode("utf-8-sig")
            return astropy_ascii.read(text, format="csv", fast_reader=False), {}
    except UserError:
        raise
    except Exception as exc:
        raise UploadError(
            f"the upload {name} could not be read as a VOTable or CSV file: {str(exc).splitlines()[0][:300]}",
            hint="send a VOTable (any serialization) or a CSV file whose first line names the columns",
        ) from None


def _column_info(table_name: str, table: Table, column_name: str, field: Any) -> ColumnInfo:
    column = table[column_name]
    if not column_name or not column_name.replace("_", "a").isalnum() or not column_name[0].isalpha():
        raise UploadError(
            f"the upload {table_name} has a column named {column_name!r}, which is not an ADQL identifier",
            hint="rename the column to letters, digits and underscores, starting with a letter",
        )
    unit = str(column.unit) if column.unit is not None else None
    ucd = getattr(field, "ucd", None) if field is not None else column.meta.get("ucd")
    description = getattr(field, "description", None) if field is not None else column.description
    if column.ndim > 1:
        raise UploadError(
            f"the upload {table_name} has an array column {column_name}, which cannot be queried",
            hint="upload scalar columns only",
        )
    kind = column.dtype.kind
    if kind in ("U", "S", "O"):
        xtype = getattr(field, "xtype", None) if field is not None else None
        return ColumnInfo(
            column_name,
            "char",
            "*",
            xtype="timestamp" if xtype == "timestamp" else None,
            unit=unit,
            ucd=ucd,
            description=description,
        )
    key = "b" if kind == "b" else f"{kind}{column.dtype.itemsize}"
    datatype = _DATATYPES.get(key)
    if datatype is None:
        raise UploadError(
            f"the upload {table_name} has a column {column_name} of type {column.dtype}, which cannot be stored",
            hint="use numbers, booleans or text",
        )
    return ColumnInfo(column_name, datatype, unit=unit, ucd=ucd, description=description)


def _rows(table: Table, columns: Sequence[ColumnInfo]) -> list[tuple[Any, ...]]:
    """Python values per row; masked entries (and NaN in integer-typed data) become None."""
    values = []
    for info, column_name in zip(columns, table.colnames, strict=True):
        column = table[column_name]
        mask = np.asarray(getattr(column, "mask", np.zeros(len(column), dtype=bool)), dtype=bool)
        data = np.asarray(column)
        converted: list[Any] = []
        for index, value in enumerate(data.tolist()):
            if mask.size and mask[index]:
                converted.append(None)
            elif isinstance(value, bytes):
                converted.append(value.decode("utf-8", errors="replace"))
            elif info.datatype in ("float", "double") and isinstance(value, float) and math.isnan(value):
                converted.append(float("nan"))
            else:
                converted.append(value)
        values.append(converted)
    return list(zip(*values, strict=True)) if values else []


def _position_columns(columns: Sequence[ColumnInfo]) -> tuple[str | None, str | None]:
    numeric = [c for c in columns if c.datatype in ("double", "float")]

    def by_ucd(prefix: str) -> str | None:
        found = [c.name for c in numeric if c.ucd and c.ucd.lower().startswith(prefix)]
        main = [c.name for c in numeric if c.ucd and c.ucd.lower() == f"{prefix};meta.main"]
        return (main or found or [None])[0]

    def by_name(name: str) -> str | None:
        return next((c.name for c in numeric if c.name.lower() == name), None)

    ra = by_ucd("pos.eq.ra") or by_name("ra")
    dec = by_ucd("pos.eq.dec") or by_name("dec")
    return (ra, dec) if ra and dec else (None, None)
