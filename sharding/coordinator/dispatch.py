"""Run worker statements for the query engine: scatter, single, gather, coordinator sessions.

The execution layer under the planner: it knows nothing of ADQL, only of SQL
text per chunk list, chunk placement and nodes.

API
---
``Dispatcher(topology, *, statement_timeout_s=300.0, max_concurrency=16, batch_rows=10_000,
pool_max_size=8, connect_timeout_s=10.0, acquire_timeout_s=30.0)``; ``await open()`` /
``await close()`` or ``async with``.

* ``scatter(sql_for, chunks, chunk_map) -> RowStream``: one statement per chosen worker,
  ``sql_for(chunk_ids_of_that_worker)``; ``chunks=None`` means every chunk of ``chunk_map``;
  chunks without placement hold no rows and are skipped.  With no chunk left, the stream is
  empty; its columns come from describing ``sql_for([])`` on one live worker (so ``sql_for``
  must accept an empty list).
* ``single(sql, node=None) -> RowStream``: one statement on one node; ``None`` is any live
  worker (the next one is tried when one is down), ``"coordinator"`` the coordinator.
* ``RowStream``: ``await start()`` (every admitted worker answered; ``columns`` known),
  ``async for row in stream``, ``next_batch()`` / ``batches()`` for whole batches,
  ``await aclose()`` or ``async with`` to cancel what still runs.  ``stream.request`` is the
  :class:`ScatterRequest` or :class:`SingleRequest` behind it.
* ``await gather(source, *, into, table, column_names=None) -> GatherResult``: ``source`` is a
  ``RowStream`` that was not started, or a request; its rows are copied into a new
  ``TEMPORARY`` table ``table`` of the coordinator session ``into`` (autocommit, e.g. from
  ``coordinator_session()``).  ``GatherResult.row_count``, ``.columns``.
* ``await coordinator_rows(query, params) -> list[tuple]``: one read-only statement on the
  coordinator, on a connection that needs no reset (director index look-ups).
* ``coordinator_session()``: ``async with`` a pooled coordinator connection in autocommit
  mode; run the merge query inside ``async with conn.transaction():`` with a named cursor.
  Temporary tables and settings are discarded when it goes back to the pool.  Both raise
  :class:`~dms_db.errors.NodeUnavailableError` when the coordinator cannot be reached.

Worker statements run in ``BEGIN READ ONLY`` transactions with a local
``statement_timeout``, at most ``max_concurrency`` at a time.  A worker that
cannot be reached, goes away or times out is excluded for the query and its
chunks are rerun on their other replicas; rows already sent to the caller
make that impossible and fail the query instead.  No replica left:
:class:`~dms_db.errors.NodeUnavailableError` (:class:`QueryTimeoutError` when
all of them timed out).  A statement the worker rejects (SQLSTATE 22, 42...)
is not retried: :class:`QueryExecutionError` with PostgreSQL's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

import psycopg

from dms_db.errors import NotFoundError
from dms_db.topology import NodeSpec, Topology
from sharding.coordinator.chunk_map import ChunkMap
from sharding.coordinator.execution import Execution, Query, ResultColumnType, Sink, WorkPlan
from sharding.coordinator.failures import (
    QueryExecutionError,
    QueryTimeoutError,
    RetryableNodeError,
    coordinator_error,
    coordinator_unavailable,
)
from sharding.coordinator.gather import GatherResult, GatherSink, TempTableWriter
from sharding.coordinator.node_pools import NodePool, NodePools
from sharding.coordinator.row_stream import RowStream

__all__ = [
    "ChunkMap",
    "Dispatcher",
    "GatherResult",
    "QueryExecutionError",
    "QueryTimeoutError",
    "ResultColumnType",
    "RowStream",
    "ScatterRequest",
    "SingleRequest",
]

COORDINATOR = "coordinator"
#: How long closing waits for attempts that are still ending their transactions.
CLOSE_GRACE_S = 10.0


@dataclass(frozen=True)
class ScatterRequest:
    """One statement per worker over the chunks it is given."""

    sql_for: Callable[[Sequence[int]], Query]
    chunk_map: ChunkMap
    chunks: tuple[int, ...] | None = None  # None: every placed chunk


@dataclass(frozen=True)
class SingleRequest:
    """One statement on one node (None: any live worker)."""

    sql: Query
    node: str | None = None


Request = ScatterRequest | SingleRequest


class Dispatcher:
    """Connection pools per node and the execution of worker statements."""

    def __init__(
        self,
        topology: Topology,
        *,
        statement_timeout_s: float = 300.0,
        max_concurrency: int = 16,
        batch_rows: int = 10_000,
        pool_max_size: int = 8,
        connect_timeout_s: float = 10.0,
        acquire_timeout_s: float = 30.0,
    ) -> None:
        self.topology = topology
        self.statement_timeout_s = statement_timeout_s
        self.batch_rows = batch_rows
        self._pools = NodePools(
            topology, max_size=pool_max_size, connect_timeout_s=connect_timeout_s, acquire_timeout_s=acquire_timeout_s
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._rotation = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()  # attempts still running, some only ending their transaction

    async def open(self) -> None:
        """Nothing to do eagerly: each node's pool opens on first use, so a down node costs nothing."""

    def add_workers(self, workers: Sequence[NodeSpec]) -> None:
        """Serve workers registered since this dispatcher was made (``cluster add-worker``) too."""
        self.topology = self._pools.add_workers(workers)

    async def close(self) -> None:
        """Let attempts that are ending their transactions finish, then close every pool."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE_S)
        await self._pools.close()

    async def __aenter__(self) -> Dispatcher:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------

    def scatter(
        self, sql_for: Callable[[Sequence[int]], Query], chunks: Iterable[int] | None, chunk_map: ChunkMap
    ) -> RowStream:
        """Stream the rows of ``sql_for(chunks of a worker)`` run on every chosen worker."""
        request = ScatterRequest(sql_for, chunk_map, None if chunks is None else tuple(int(c) for c in chunks))
        return self.stream(request)

    def single(self, sql: Query, node: str | None = None) -> RowStream:
        """Stream the rows of one statement on one node."""
        return self.stream(SingleRequest(sql, node))

    def stream(self, request: Request) -> RowStream:
        """A (not yet started) row stream for a request."""
        plan = self._plan(request)
        return RowStream(request, lambda sink: self._execution(plan, sink), self.batch_rows)

    async def gather(
        self,
        source: RowStream | Request,
        *,
        into: psycopg.AsyncConnection,
        table: str,
        column_names: Sequence[str] | None = None,
    ) -> GatherResult:
        """Copy every row of ``source`` into a new temporary table of the session ``into``."""
        request = source.request if isinstance(source, RowStream) else source
        writer = TempTableWriter(into, table, column_names)
        execution = self._execution(self._plan(request), GatherSink(writer))
        writer_task = asyncio.get_running_loop().create_task(writer.run(), name=f"dms-db gather into {table}")
        writer_task.add_done_callback(lambda task: _writer_ended(task, execution))
        try:
            execution.launch()
            await execution.wait_until(execution.all_done)
            await writer.queue.put(None)
            await execution.wait_until(writer_task.done)
            writer_task.result()
            row_count = await writer.finish(execution.failed_attempt_numbers())
        except BaseException:
            await asyncio.shield(_abandon_gather(execution, writer, writer_task))
            raise
        return GatherResult(row_count, list(writer.columns or []))

    @contextlib.asynccontextmanager
    async def coordinator_session(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled coordinator connection (autocommit) for temp tables and the merge query."""
        async with _coordinator_connection(self._pools.coordinator) as conn:
            yield conn

    async def coordinator_rows(self, query: Query, params: Sequence[object] = ()) -> list[tuple]:
        """All rows of one read-only statement on the coordinator, outside any query's session.

        For look-ups such as the director index: a session would cost a reset when given back.
        """
        async with _coordinator_connection(self._pools.coordinator_lookups) as conn:
            try:
                cursor = await conn.execute(query, params)
                return await cursor.fetchall()
            except psycopg.Error as exc:
                raise coordinator_error(exc) from None

    # -- internals ---------------------------------------------------------

    def _execution(self, plan: WorkPlan, sink: Sink) -> Execution:
        return Execution(
            self._pools, self._semaphore, plan, sink, statement_timeout_s=self.statement_timeout_s, tasks=self._tasks
        )

    def _plan(self, request: Request) -> WorkPlan:
        if isinstance(request, SingleRequest):
            query = request.sql
            return WorkPlan({0: self._single_candidates(request.node)}, lambda _units: query, chunked=False)
        chunk_map = request.chunk_map
        placed = chunk_map.placed(request.chunks)
        if not placed:
            sql_for = request.sql_for
            return WorkPlan(
                {0: self._single_candidates(None)}, lambda _units: sql_for([]), chunked=False, describe_only=True
            )
        return WorkPlan({chunk: chunk_map.replicas[chunk] for chunk in placed}, request.sql_for)

    def _single_candidates(self, node: str | None) -> tuple[str, ...]:
        """The node asked for, or every worker starting at a rotating one to spread the load."""
        if node == COORDINATOR:
            return (self.topology.coordinator.name,)
        if node is not None:
            if node not in self._pools:
                raise NotFoundError(f"no node named {node!r}", hint="see 'dms-db cluster status'")
            return (node,)
        workers = [w.name for w in self.topology.workers]
        if not workers:
            raise NotFoundError("the cluster has no worker", hint="add one with 'dms-db cluster add-worker'")
        start = next(self._rotation) % len(workers)
        return tuple(workers[start:] + workers[:start])


@contextlib.asynccontextmanager
async def _coordinator_connection(pool: NodePool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection of a coordinator pool; an unreachable coordinator is the caller's error, not a retry."""
    try:
        conn = await pool.acquire()
    except RetryableNodeError as exc:
        raise coordinator_unavailable(exc.reason) from None
    try:
        yield conn
    finally:
        await pool.release(conn)


def _writer_ended(task: asyncio.Task[None], execution: Execution) -> None:
    """Wake the gather; a coordinator-side failure ends it, as attempts must not wait on a dead writer."""
    if not task.cancelled() and task.exception() is not None:
        execution.fail(task.exception())  # type: ignore[arg-type]
    execution.notify()


async def _abandon_gather(execution: Execution, writer: TempTableWriter, writer_task: asyncio.Task[None]) -> None:
    await execution.cancel()
    writer_task.cancel()
    await asyncio.gather(writer_task, return_exceptions=True)
    await writer.drop()
