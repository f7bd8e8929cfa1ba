"""HTTP handlers of the TAP service except async jobs: /sync and the VOSI and DALI endpoints.

Each handler parses the request, calls a service function and shapes the
response; the work happens in :mod:`api.tap.query_stream` (queries),
:mod:`api.tap.vosi` and :mod:`api.tap.examples` (documents).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from api.tap.auth import request_owner
from api.tap.errors import error_response
from api.tap.examples import examples_document
from api.tap.formats import resolve_format
from api.tap.params import query_request, read_parameters
from api.tap.query_stream import open_query
from api.tap.service import TapService
from api.tap.uploads import read_uploads
from api.tap.vosi import (
    availability_document,
    capabilities_document,
    read_table_descriptions,
    table_document,
    tables_document,
)
from dms_db.errors import NotFoundError

__all__ = ["TAP_PARAMETERS", "base_url", "service_of", "started_now", "tap_router"]

XML = "text/xml"

# At module level: with postponed annotations FastAPI resolves ``owner: Owner`` in the module's globals,
# so an alias local to tap_router() would make ``owner`` a required query parameter.
Owner = Annotated[str, Depends(request_owner)]

TAP_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
    for name, kind, text in (
        ("REQUEST", "string", "doQuery (optional)"),
        ("LANG", "string", "query language: ADQL"),
        ("QUERY", "string", "the ADQL query"),
        ("RESPONSEFORMAT", "string", "output format: votable, votable/b2, csv, tsv, fits, parquet, json"),
        ("FORMAT", "string", "same as RESPONSEFORMAT"),
        ("MAXREC", "integer", "largest number of rows to return"),
        ("UPLOAD", "string", "name,param:part (a part of this request) or name,https://... pairs, separated by ;"),
        ("RUNID", "string", "an identifier of the client's choice, echoed in async jobs"),
    )
]


def service_of(request: Request) -> TapService:
    """The running service's state."""
    return request.app.state.service


def base_url(request: Request) -> str:
    """The service's public base URL ending in ``/tap``: configured, or as the client reached it."""
    configured = service_of(request).config.service.public_url
    root = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{root}/tap"


def tap_router() -> APIRouter:
    """Routes of /tap except /tap/async."""
    router = APIRouter()

    sync_route = {
        "summary": "Run an ADQL query and return its result",
        "openapi_extra": {"parameters": TAP_PARAMETERS},
        "response_class": Response,
    }

    # One route per method: a shared api_route gives GET and POST the same OpenAPI operationId.
    @router.get("/sync", **sync_route)
    @router.post("/sync", **sync_route)
    async def sync_query(request: Request, owner: Owner) -> Response:
        service = service_of(request)
        limits = service.config.service
        parameters = await read_parameters(request)
        tap_request = query_request(parameters, maxrec_default=limits.maxrec_default, maxrec_limit=limits.maxrec_limit)
        result_format = resolve_format(tap_request.format)
        try:
            uploads = await read_uploads(
                parameters,
                tap_request.uploads,
                max_bytes=limits.upload_max_bytes,
                max_rows=limits.upload_max_rows,
                allow_urls=limits.upload_from_urls,
            )
        finally:
            await request.close()  # the uploads are in memory now; drop the multipart temp files
        opened = await open_query(
            service, tap_request, result_format, uploads=uploads, owner=owner, time_limit_s=limits.sync_timeout_s
        )
        return StreamingResponse(opened.chunks(), media_type=result_format.media_type)

    @router.get("/capabilities", summary="VOSI capabilities", response_class=Response)
    async def capabilities(request: Request) -> Response:
        document = capabilities_document(base_url(request), service_of(request).config.service)
        return Response(document, media_type=XML)

    @router.get("/availability", summary="VOSI availability", response_class=Response)
    async def availability(request: Request) -> Response:
        service = service_of(request)
        try:
            async with service.pool.connection(timeout=5) as conn:
                await conn.execute("SELECT 1")
            available, note = True, "the service is accepting queries"
        except Exception:
            available, note = False, "the coordinator database cannot be reached"
        document = availability_document(available, note, up_since=request.app.state.started_at)
        return Response(document, media_type=XML)

    @router.get("/tables", summary="VOSI tables", response_class=Response)
    async def tables(request: Request, detail: str | None = None) -> Response:
        async with service_of(request).pool.connection() as conn:
            descriptions = await read_table_descriptions(conn)
        return Response(tables_document(descriptions, detail=detail != "min"), media_type=XML)

    @router.get("/tables/{table_name}", summary="VOSI description of one table", response_class=Response)
    async def one_table(request: Request, table_name: str) -> Response:
        async with service_of(request).pool.connection() as conn:
            descriptions = await read_table_descriptions(conn)
        for description in descriptions:
            if description.name.lower() == table_name.lower():
                return Response(table_document(description), media_type=XML)
        return error_response(
            NotFoundError(f"no table {table_name}", hint=f"the tables are listed at {base_url(request)}/tables")
        )

    @router.get("/examples", summary="DALI examples", response_class=Response)
    async def examples(request: Request) -> Response:
        async with service_of(request).pool.connection() as conn:
            descriptions = await read_table_descriptions(conn)
        deployed = [description.name for description in descriptions]
        return Response(examples_document(deployed), media_type="application/xhtml+xml")

    @router.get("", summary="Service root", response_class=Response)
    async def root(request: Request) -> Response:
        url = base_url(request)
        links = "".join(
            f'<li><a href="{url}/{name}">{name}</a></li>'
            for name in ("sync", "async", "capabilities", "availability", "tables", "examples")
        )
        title = "<head><title>dms-db TAP</title></head>"
        body = f"<html>{title}<body><h1>dms-db TAP service</h1><ul>{links}</ul></body></html>"
        return Response(body, media_type="text/html")

    return router


def started_now() -> datetime:
    """The time the service started (for VOSI availability)."""
    return datetime.now(UTC)
