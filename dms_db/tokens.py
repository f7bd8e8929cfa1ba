"""Bearer tokens of the TAP service: created and revoked by an operator, checked on every request.

A token is 32 random bytes, shown once when created; only its SHA-256 is
stored (``dms.api_token``), so a copy of the database does not leak usable
tokens.  A token names its owner, who then sees only their own async jobs.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

from dms_db.errors import NotFoundError, UserError

__all__ = ["TOKEN_PREFIX", "IssuedToken", "create_token", "list_tokens", "revoke_tokens", "token_hash", "token_owner"]

TOKEN_PREFIX = "dms_"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret to give to its owner, and the owner."""

    secret: str
    owner: str


def token_hash(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_owner(owner: str) -> str:
    owner = owner.strip()
    if not owner or len(owner) > 128 or any(c.isspace() for c in owner):
        raise UserError(
            f"{owner!r} is not a usable owner name", hint="use a user name of 1-128 characters without spaces"
        )
    return owner


def create_token(
    conn: psycopg.Connection, owner: str, *, note: str | None = None, expires_at: datetime | None = None
) -> IssuedToken:
    """Create a token for ``owner``; the secret is returned once and never stored."""
    owner = _check_owner(owner)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO dms.api_token (token_hash, owner, note, expires_at) VALUES (%s, %s, %s, %s)",
        [token_hash(secret), owner, note, expires_at],
    )
    return IssuedToken(secret, owner)


def revoke_tokens(conn: psycopg.Connection, *, owner: str | None = None, secret: str | None = None) -> int:
    """Revoke one token (by its secret) or every token of an owner; returns how many were revoked."""
    if (owner is None) == (secret is None):
        raise UserError("name either a token or an owner to revoke", hint="dms-db token revoke --owner NAME")
    if secret is not None:
        cursor = conn.execute(
            "UPDATE dms.api_token SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
            [token_hash(secret.strip())],
        )
    else:
        cursor = conn.execute(
            "UPDATE dms.api_token SET revoked_at = now() WHERE owner = %s AND revoked_at IS NULL", [owner]
        )
    if cursor.rowcount == 0:
        raise NotFoundError("no active token matches", hint="list the owners with 'dms-db token list'")
    return cursor.rowcount


def list_tokens(conn: psycopg.Connection) -> list[tuple[str, str | None, datetime, datetime | None, datetime | None]]:
    """(owner, note, created, expires, revoked) of every token, newest first (never the secrets)."""
    rows = conn.execute(
        "SELECT owner, note, created_at, expires_at, revoked_at FROM dms.api_token ORDER BY created_at DESC"
    ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def token_owner(conn: psycopg.AsyncConnection, secret: str) -> str | None:
    """The owner of an active token, or None (unknown, revoked or expired)."""
    cursor = await conn.execute(
        "SELECT owner FROM dms.api_token WHERE token_hash = %s AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now())",
        [token_hash(secret.strip())],
    )
    row = await cursor.fetchone()
    return str(row[0]) if row else None
