"""The query log: who ran which query, when, for how long, how many rows, and how it ended.

Every query the TAP service runs, sync or async, gets a row in
``dms.query_log`` when it starts and has it completed when it ends, so an
operator sees running queries too and a crash leaves ``running`` rows
behind rather than nothing.  Logging must never fail a query: a database
error while logging is reported to the service log and otherwise ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg_pool import AsyncConnectionPool

__all__ = ["QueryLog", "QueryOutcome"]

QueryOutcome = Literal["ok", "error", "aborted", "overflow"]

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 2000


@dataclass
class QueryLog:
    """Writes ``dms.query_log`` rows through a connection pool of the coordinator."""

    pool: AsyncConnectionPool

    async def started(self, owner: str, query_text: str) -> int | None:
        """Record a query that starts now; returns its log id (None if logging failed)."""
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(
                    "INSERT INTO dms.query_log (owner, query_text) VALUES (%s, %s) RETURNING query_id",
                    [owner, query_text],
                )
                row = await cursor.fetchone()
                return int(row[0]) if row else None
        except psycopg.Error as exc:
            log.warning("could not write the query log: %s", exc)
            return None

    async def finished(
        self, query_id: int | None, *, outcome: QueryOutcome, rows: int | None, error: str | None = None
    ) -> None:
        """Complete a query's log row with its duration, rows and outcome."""
        if query_id is None:
            return
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "UPDATE dms.query_log SET outcome = %s, row_count = %s, error = %s, "
                    "duration_ms = EXTRACT(EPOCH FROM clock_timestamp() - started_at) * 1000 WHERE query_id = %s",
                    [outcome, rows, error[:_MAX_ERROR_CHARS] if error else None, query_id],
                )
        except psycopg.Error as exc:
            log.warning("could not complete the query log: %s", exc)
