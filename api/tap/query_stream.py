"""Run one TAP query and turn its rows into the bytes of the chosen format, as they arrive.

Shared by ``/sync`` (bytes go to the HTTP response) and async jobs (bytes go
to the job's result file).  :func:`open_query` plans the query and fetches
its first batch before anything is sent, so that errors a query can raise
(ADQL, unknown tables, a worker rejecting the SQL) still become a VOTable
error document with the right HTTP status.  The rest streams: one batch of
rows in memory at a time, whatever the result size.

MAXREC is enforced by asking the engine for MAXREC + 1 rows: if the extra
row arrives, the result is truncated and marked ``OVERFLOW``.

The first batch also settles how text columns are declared: a ``char``
column (what TAP_SCHEMA says of catalog text) stays ``char`` when that batch
is the whole result and all its values are ASCII, and becomes
``unicodeChar`` otherwise (:func:`api.tap.formats.vouched_text_columns`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from adql import ResultColumn
from api.tap.formats import ResultFormat, ResultInfo, vouched_text_columns
from api.tap.params import QueryRequest
from api.tap.service import TapService
from dms_db.errors import DmsError, QueryTimeoutError
from dms_db.query_log import QueryOutcome
from sharding.coordinator.uploads import UploadedTable

__all__ = ["OpenQuery", "open_query"]

BATCH_ROWS = 2000


@dataclass
class OpenQuery:
    """A planned query whose first rows are in hand; iterate :meth:`chunks` for the encoded result."""

    columns: tuple[ResultColumn, ...]
    result_format: ResultFormat
    maxrec: int
    deadline: float
    _service: TapService
    _stack: AsyncExitStack
    _rows: AsyncIterator[tuple[Any, ...]]
    _first: list[tuple[Any, ...]]
    _exhausted: bool
    _log_id: int | None
    _query: str
    row_count: int = 0
    overflow: bool = False
    outcome: QueryOutcome | None = field(default=None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The encoded result, chunk by chunk; closes the query (and logs it) when done or abandoned."""
        writer = self.result_format.writer(self.columns, ResultInfo(query=self._query))
        error: str | None = None
        try:
            yield writer.begin()
            async for batch in self._batches():
                encoded = writer.write_rows(batch)
                if encoded:
                    yield encoded
            for tail in writer.finish(overflow=self.overflow):
                yield tail
            self.outcome = "overflow" if self.overflow else "ok"
        except (asyncio.CancelledError, GeneratorExit):
            self.outcome = "aborted"
            raise
        except BaseException as exc:
            self.outcome = "error"
            error = exc.message if isinstance(exc, DmsError) else type(exc).__name__
            raise
        finally:
            writer.close()
            await self.close(error)

    async def _batches(self) -> AsyncIterator[list[tuple[Any, ...]]]:
        pending = self._first
        self._first = []
        exhausted = self._exhausted
        while True:
            room = self.maxrec - self.row_count
            if len(pending) > room:
                self.overflow = True
                pending = pending[:room]
                exhausted = True
            if pending:
                self.row_count += len(pending)
                yield pending
            if exhausted:
                return
            pending, exhausted = await _next_batch(self._rows, BATCH_ROWS, self.deadline)

    async def close(self, error: str | None = None) -> None:
        """Stop the query (cancelling worker statements) and complete its log row; safe to call twice."""
        stack, self._stack = self._stack, AsyncExitStack()
        try:
            await stack.aclose()
        finally:
            if self._log_id is not None:
                log_id, self._log_id = self._log_id, None
                await self._service.query_log.finished(
                    log_id, outcome=self.outcome or "aborted", rows=self.row_count, error=error
                )


async def _next_batch(
    rows: AsyncIterator[tuple[Any, ...]], size: int, deadline: float
) -> tuple[list[tuple[Any, ...]], bool]:
    """Up to ``size`` rows, and whether the stream ended; raises QueryTimeoutError past the deadline."""
    batch: list[tuple[Any, ...]] = []
    remaining = deadline - time.monotonic()
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            async for row in rows:
                batch.append(row)
                if len(batch) >= size:
                    return batch, False
    except TimeoutError:
        raise QueryTimeoutError(
            "the query ran longer than its time limit and was cancelled",
            hint="restrict it (a region, a TOP, fewer columns), or run it as an async job with a longer limit",
        ) from None
    return batch, True


async def open_query(
    service: TapService,
    request: QueryRequest,
    result_format: ResultFormat,
    *,
    uploads: Sequence[UploadedTable] = (),
    owner: str,
    time_limit_s: float,
) -> OpenQuery:
    """Plan ``request`` and fetch its first batch; errors up to here are raised, with nothing sent yet."""
    log_id = await service.query_log.started(owner, request.query)
    deadline = time.monotonic() + time_limit_s
    stack = AsyncExitStack()
    try:
        async with asyncio.timeout(time_limit_s):
            result = await stack.enter_async_context(
                service.engine.query_async(request.query, max_rows=request.maxrec + 1, uploads=uploads)
            )
        rows = aiter(result.rows)
        first, exhausted = await _next_batch(rows, BATCH_ROWS, deadline)
    except BaseException as exc:
        await stack.aclose()
        outcome: QueryOutcome = "aborted" if isinstance(exc, asyncio.CancelledError) else "error"
        message = exc.message if isinstance(exc, DmsError) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            message = "time limit exceeded"
        await service.query_log.finished(log_id, outcome=outcome, rows=None, error=message)
        if isinstance(exc, TimeoutError):
            raise QueryTimeoutError(
                "the query ran longer than its time limit and was cancelled",
                hint="restrict it, or run it as an async job with a longer limit",
            ) from None
        raise
    return OpenQuery(
        columns=vouched_text_columns(result.columns, first, complete=exhausted),
        result_format=result_format,
        maxrec=request.maxrec,
        deadline=deadline,
        _service=service,
        _stack=stack,
        _rows=rows,
        _first=first,
        _exhausted=exhausted,
        _log_id=log_id,
        _query=request.query,
    )
