"""Read the tables of a TAP UPLOAD (VOTable or CSV) into :class:`UploadedTable` values.

An upload is a part of the multipart request (``name,param:part``) or a
document the service fetches (``name,http(s)://...``, which TAP 1.1 requires).
Files are read with astropy, as users' own tools would write them.  Limits
on bytes (enforced while reading, so an oversize document is never held
whole) and rows keep one request from filling the coordinator; every
problem names the upload and says how to fix it.  Column types come from the
VOTable FIELDs, or for CSV from the values (integers, floats, booleans,
text).  A column whose UCD is ``pos.eq.ra;meta.main`` / ``pos.eq.dec;meta.main``
(or, failing that, a column called ``ra`` / ``dec``) is the table's position,
which lets a crossmatch ask only the chunks near the uploaded positions.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np
from astropy.io import ascii as astropy_ascii
from astropy.io import votable
from astropy.table import Table
from starlette.datastructures import UploadFile

from adql import ColumnInfo
from api.tap.params import TapParameterError, TapParameters, UploadReference
from dms_db.errors import UserError
from sharding.coordinator.uploads import UploadedTable

__all__ = ["FETCH_TIMEOUT_S", "UploadError", "read_upload", "read_uploads", "request_part", "uploaded_table"]

FETCH_TIMEOUT_S = 30.0
"""Longest the service waits for an upload given by URL, from connecting to the last byte."""
_URL_SCHEMES = ("http", "https")

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
    parameters: TapParameters,
    references: Sequence[UploadReference],
    *,
    max_bytes: int,
    max_rows: int,
    allow_urls: bool = True,
) -> list[UploadedTable]:
    """Read every table an UPLOAD parameter names, from the request's multipart parts or from its URL."""
    tables = []
    for reference in references:
        content = await read_upload(reference, parameters.files, max_bytes=max_bytes, allow_urls=allow_urls)
        tables.append(uploaded_table(reference.name, content, max_rows=max_rows))
    return tables


def request_part(reference: UploadReference) -> str | None:
    """The multipart part an upload is in (``param:<part>``), or None for an http(s) URL.

    Raises
    ------
    TapParameterError
        The reference is neither (another scheme, or ``param:`` without a part name).
    """
    scheme, _, rest = reference.source.partition(":")
    scheme = scheme.lower()
    if scheme == "param" and rest:
        return rest
    if scheme in _URL_SCHEMES and rest.startswith("//") and len(rest) > 2:
        return None
    raise TapParameterError(
        f"UPLOAD {reference.name} refers to {reference.source!r}; this service reads uploads from parts of the "
        "request itself (param:) or from http and https URLs",
        hint=f"write UPLOAD={reference.name},param:<part name> with the table in that multipart part, "
        f"or UPLOAD={reference.name},https://<where the table is>",
    )


async def read_upload(
    reference: UploadReference,
    files: Mapping[str, UploadFile],
    *,
    max_bytes: int,
    timeout_s: float = FETCH_TIMEOUT_S,
    allow_urls: bool = True,
) -> bytes:
    """The bytes of one upload: its multipart part, or the document at its URL (at most ``max_bytes``)."""
    part = request_part(reference)
    if part is None and not allow_urls:
        raise TapParameterError(
            f"UPLOAD {reference.name} refers to a URL, and this service does not fetch uploads from URLs",
            hint=f"send the table in the request: UPLOAD={reference.name},param:<part> with a multipart part",
        )
    if part is None:
        return await _fetch(reference, max_bytes=max_bytes, timeout_s=timeout_s)
    upload = files.get(part)
    if upload is None:
        raise TapParameterError(
            f"UPLOAD {reference.name} refers to the part {part!r}, which the request does not contain",
            hint="send the table as a multipart/form-data file part of that name",
        )
    content = await upload.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise _too_large(reference.name, max_bytes)
    return content


async def _fetch(reference: UploadReference, *, max_bytes: int, timeout_s: float) -> bytes:
    """GET the upload's URL, reading no more than ``max_bytes`` (plus one chunk) of its body."""
    url, name = reference.source, reference.name
    content = bytearray()
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client,
            # identity: the limit then counts what the server sends, not what a small compressed body inflates to
            client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response,
        ):
            if not response.is_success:
                raise UploadError(
                    f"the upload {name} could not be fetched: {url} answered {response.status_code} "
                    f"{response.reason_phrase}".rstrip(),
                    hint="check that the URL is right and readable without logging in",
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(name, max_bytes)
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > max_bytes:
                    raise _too_large(name, max_bytes)
    except (TimeoutError, httpx.TimeoutException):
        raise UploadError(
            f"the upload {name} could not be fetched: {url} did not send the table within {timeout_s:g} s",
            hint="put the table on a faster server, or send it with the request (UPLOAD=name,param:<part>)",
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UploadError(
            f"the upload {name} could not be fetched from {url}: {reason}",
            hint="check that the URL is right and that its server is reachable from this service",
        ) from None
    return bytes(content)


def _too_large(name: str, max_bytes: int) -> UploadError:
    return UploadError(
        f"the upload {name} is larger than this service's limit of {max_bytes:,} bytes",
        hint="upload fewer rows or columns, or split the query",
        too_large=True,
    )


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
    rows = _rows(table)
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


def _rows(table: Table) -> list[tuple[Any, ...]]:
    """Python values per row: masked entries become None, bytes become text."""
    values = []
    for column_name in table.colnames:
        column = table[column_name]
        mask = np.asarray(getattr(column, "mask", np.zeros(len(column), dtype=bool)), dtype=bool)
        data = np.asarray(column)
        converted: list[Any] = []
        for index, value in enumerate(data.tolist()):
            if mask.size and mask[index]:
                converted.append(None)
            elif isinstance(value, bytes):
                converted.append(value.decode("utf-8", errors="replace"))
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
