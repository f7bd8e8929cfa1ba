"""Who is asking: anonymous access, or the owner of a bearer token.

With ``auth = "anonymous"`` every request runs as ``anonymous`` (the local
default).  With ``auth = "token"`` every request must carry
``Authorization: Bearer <token>`` for an active token (``dms-db token
create``); the owner it names is who runs queries, owns async jobs and
appears in the query log.
"""

from __future__ import annotations

from fastapi import Request

from api.tap.service import TapService
from dms_db.errors import UserError
from dms_db.tokens import token_owner

__all__ = ["ANONYMOUS", "AuthenticationError", "request_owner"]

ANONYMOUS = "anonymous"


class AuthenticationError(UserError):
    """The request lacks a valid bearer token where one is required."""

    error_type = "AuthenticationRequired"
    http_status = 401


async def request_owner(request: Request) -> str:
    """The owner a request acts for (a FastAPI dependency)."""
    service: TapService = request.app.state.service
    if service.config.service.auth == "anonymous":
        return ANONYMOUS
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "this service needs a bearer token",
            hint="send 'Authorization: Bearer <token>'; an operator creates tokens with 'dms-db token create'",
        )
    async with service.pool.connection() as conn:
        owner = await token_owner(conn, secret)
    if owner is None:
        raise AuthenticationError(
            "the bearer token is not valid (unknown, revoked or expired)", hint="ask an operator for a new token"
        )
    return owner
