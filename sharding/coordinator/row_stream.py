"""Worker rows streamed to the caller as they arrive, never a partial result.

Each attempt fetches its statement through a server-side cursor in batches.
Its first batch is held back until every admitted worker has answered
(:meth:`RowStream.start`), so that most failures (unreachable worker, bad
SQL, a timeout before the first rows) are handled, by a retry on a replica or
an error, before the caller has seen anything.  Later batches wait in a
one-batch queue per attempt, which bounds memory to a few batches per worker
and pushes back on the workers when the caller is slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import Any

import psycopg

from sharding.coordinator.execution import Attempt, AttemptState, Execution, ResultColumnType, fetch_statement


class StreamSink:
    """Fetch an attempt's rows with a named cursor into its batch queue."""

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows

    async def consume(self, execution: Execution, attempt: Attempt, conn: psycopg.AsyncConnection) -> None:
        """Open the cursor with its first batch, learn the columns, then fetch batch after batch."""
        cursor = await execution.open_cursor(conn, attempt, self.batch_rows)
        await execution.learn_columns(conn, cursor)
        if execution.plan.describe_only:
            self._deliver_first(execution, attempt, [])
            return
        fetch_next = fetch_statement(attempt, self.batch_rows)
        rows = await cursor.fetchall()
        while True:
            if attempt.state is AttemptState.RUNNING:
                self._deliver_first(execution, attempt, rows)
            elif rows:
                await attempt.batches.put(rows)
                execution.notify()
            if len(rows) < self.batch_rows or execution.closing:
                break
            await cursor.execute(fetch_next)
            rows = await cursor.fetchall()

    @staticmethod
    def _deliver_first(execution: Execution, attempt: Attempt, rows: list[tuple]) -> None:
        attempt.first = rows
        attempt.state = AttemptState.STREAMING
        execution.notify()


class RowStream:
    """Rows of a scatter or single request, as an async iterator of tuples.

    Nothing runs until :meth:`start` (or the first ``__anext__``).  Use it
    as ``async with`` (or call :meth:`aclose`) so that worker statements are
    cancelled when the caller stops early.
    """

    def __init__(self, request: Any, execution_factory: Callable[[StreamSink], Execution], batch_rows: int) -> None:
        self.request = request  # kept so that the same request can be gathered instead
        self._execution_factory = execution_factory
        self._batch_rows = batch_rows
        self._execution: Execution | None = None
        self._rows: list[tuple] = []
        self._position = 0
        self._turn = 0
        self._closed = False

    @property
    def columns(self) -> list[ResultColumnType]:
        """Result columns, known once :meth:`start` returned."""
        if self._execution is None or self._execution.columns is None:
            return []
        return self._execution.columns

    async def start(self) -> None:
        """Begin the worker statements and wait for the first batch of every admitted one."""
        if self._closed:
            raise RuntimeError("this row stream is closed")
        if self._execution is None:
            self._execution = self._execution_factory(StreamSink(self._batch_rows))
            self._execution.launch()
        await self._guarded(self._execution.wait_until(self._execution.started))

    async def next_batch(self) -> list[tuple] | None:
        """The next non-empty batch of rows, or None at the end."""
        await self.start()
        execution = self._execution
        assert execution is not None
        while True:
            batch = self._take_batch(execution)
            if batch is not None:
                return batch
            if self._drained(execution):
                return None
            await self._guarded(execution.wait_until(lambda: self._ready(execution)))

    async def batches(self) -> AsyncGenerator[list[tuple], None]:
        """Iterate over batches (cheaper than row by row for writers of whole batches)."""
        try:
            while (batch := await self.next_batch()) is not None:
                yield batch
        finally:
            await self.aclose()  # closing the generator early must stop the workers too

    def __aiter__(self) -> RowStream:
        return self

    async def __anext__(self) -> tuple:
        if self._position >= len(self._rows):
            batch = await self.next_batch()
            if batch is None:
                await self.aclose()
                raise StopAsyncIteration
            self._rows, self._position = batch, 0
        row = self._rows[self._position]
        self._position += 1
        return row

    async def aclose(self) -> None:
        """Cancel the worker statements still running and give their connections back."""
        if self._closed:
            return
        self._closed = True
        self._rows = []
        if self._execution is not None:
            await asyncio.shield(self._execution.cancel())

    async def __aenter__(self) -> RowStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _guarded(self, waiting: Any) -> None:
        """Await ``waiting``; on an error or cancellation, stop every worker statement first."""
        try:
            await waiting
        except BaseException:
            await self.aclose()
            raise

    def _take_batch(self, execution: Execution) -> list[tuple] | None:
        """A waiting batch of some attempt, attempts taken in turn so that none starves."""
        live = [a for a in execution.live_attempts() if a.state in (AttemptState.STREAMING, AttemptState.DONE)]
        for offset in range(len(live)):
            attempt = live[(self._turn + offset) % len(live)]
            rows = self._pop(attempt)
            if rows:
                self._turn += offset + 1
                attempt.released = True
                return rows
        return None

    @staticmethod
    def _pop(attempt: Attempt) -> list[tuple] | None:
        if attempt.first is not None:
            rows, attempt.first = attempt.first, None
            return rows
        if not attempt.batches.empty():
            return attempt.batches.get_nowait()
        return None

    @staticmethod
    def _ready(execution: Execution) -> bool:
        return any(a.first or not a.batches.empty() for a in execution.live_attempts()) or execution.all_done()

    @staticmethod
    def _drained(execution: Execution) -> bool:
        return execution.all_done() and not any(a.first or not a.batches.empty() for a in execution.live_attempts())
