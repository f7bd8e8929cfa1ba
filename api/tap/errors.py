"""Errors as the TAP standard wants them: a VOTable error document with the right HTTP status.

Only this module turns exceptions into responses.  A user's error (bad ADQL,
an unknown table, a bad parameter, a too-large upload) keeps its message,
hint and position; an ADQL error also carries its line and column as INFO
elements.  Anything else is the service's fault: the client gets a short
message with a request id, and the details go to the server log, never to the
client (no SQL, no DSNs, no stack traces).
"""

from __future__ import annotations

import logging
import uuid

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adql import AdqlError
from api.tap.formats import votable_error_document
from dms_db.errors import ClusterError, DmsError, UserError

__all__ = ["VOTABLE_MEDIA_TYPE", "error_document", "error_response", "install_error_handlers"]

VOTABLE_MEDIA_TYPE = "application/x-votable+xml"

log = logging.getLogger("dms_db.tap")


def error_document(exc: BaseException) -> tuple[int, bytes]:
    """HTTP status and VOTable error document of an exception."""
    infos: list[tuple[str, str]] = []
    if isinstance(exc, UserError):
        message = str(exc)
        infos.append(("error_type", exc.error_type))
        if isinstance(exc, AdqlError) and exc.line is not None:
            infos += [("line", str(exc.line)), ("column", str(exc.column))]
        return exc.http_status, votable_error_document(message, infos=infos)
    if isinstance(exc, ClusterError):
        infos.append(("error_type", exc.error_type))
        return exc.http_status, votable_error_document(str(exc), infos=infos)
    request_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", request_id, exc_info=exc)
    kind = exc.error_type if isinstance(exc, DmsError) else "InternalError"
    message = f"the service failed to answer this request (an internal error, reference {request_id})"
    return 500, votable_error_document(message, infos=[("error_type", kind), ("request_id", request_id)])


def error_response(exc: BaseException) -> Response:
    """A VOTable error response for ``exc``."""
    status, body = error_document(exc)
    return Response(body, status_code=status, media_type=VOTABLE_MEDIA_TYPE)


def install_error_handlers(app: object) -> None:
    """Make every error of the app a VOTable document: ours, FastAPI's validation errors, HTTP errors."""

    async def on_dms_error(_request: Request, exc: Exception) -> Response:
        return error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        body = votable_error_document(f"invalid request: {problems}", infos=[("error_type", "BadRequest")])
        return Response(body, status_code=400, media_type=VOTABLE_MEDIA_TYPE)

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        body = votable_error_document(str(exc.detail), infos=[("error_type", "HTTPError")])
        headers = dict(exc.headers or {})
        return Response(body, status_code=exc.status_code, media_type=VOTABLE_MEDIA_TYPE, headers=headers)

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        return error_response(exc)

    app.add_exception_handler(DmsError, on_dms_error)  # type: ignore[attr-defined]
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[attr-defined]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[attr-defined]
    app.add_exception_handler(Exception, on_unexpected)  # type: ignore[attr-defined]
