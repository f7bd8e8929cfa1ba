"""The query engine: ADQL in, rows with column metadata out, from the whole cluster.

:class:`QueryEngine` translates a query (:mod:`adql`), plans it level by
level (:mod:`sharding.coordinator.planner`) and runs the plan through the
dispatcher: nested queries first, into temporary tables of one coordinator
session, then the final phase, whose rows stream to the caller.  The same
engine serves synchronous callers (the CLI, tests) through
:meth:`QueryEngine.query` and asynchronous ones (the TAP service) through
:meth:`QueryEngine.query_async`.

The engine keeps the catalogs, the chunk placement and recent plans between
queries.  Every query reads the coordinator's metadata epoch, which triggers
raise with every change to what those caches hold (a load placing new chunks,
a deploy, a migration): when it moved, the caches are dropped, so a
long-running service answers over the cluster as it is now.  A warm engine
reads the epoch while it plans the query and starts the worker statements,
not before (a round trip less on a small query's path), and checks it before
the caller sees anything: if it moved since the query began, the query is
closed and planned again over fresh metadata.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg

from adql import ResultColumn, TranslatedQuery, translate
from dms_db.errors import NodeUnavailableError
from dms_db.metadata import ACTIVE_WORKERS_SQL, METADATA_EPOCH_SQL
from dms_db.topology import NodeRole, NodeSpec, Topology
from sharding.coordinator.chunk_map import ChunkMap
from sharding.coordinator.cluster_catalog import ClusterCatalog, read_cluster_catalog
from sharding.coordinator.direct import DirectPlan, DirectRunner
from sharding.coordinator.dispatch import Dispatcher
from sharding.coordinator.failures import coordinator_error
from sharding.coordinator.planner import CoordinatorSession, FinalStep, LevelShapeCache, Planner
from sharding.coordinator.pruning import Lookup
from sharding.coordinator.sync_bridge import SyncBridge
from sharding.coordinator.uploads import UploadedTable, upload_table_info

__all__ = ["AsyncQueryResult", "QueryEngine", "QueryResult"]

log = logging.getLogger(__name__)

TRANSLATION_CACHE_SIZE = 512
#: After the coordinator failed an epoch read, queries use the cached metadata this long before trying again.
EPOCH_RETRY_AFTER_S = 5.0
COORDINATOR_BATCH_ROWS = 5000
#: A final step that is one statement on one chunk: its SQL, the chunk's replicas, the look-ups it came from.
_OneChunkStatement = tuple[str, tuple[str, ...], tuple[Lookup, ...]]
#: Batches a synchronous reader may be behind the async side (each up to the dispatcher's batch size).
SYNC_BATCHES_AHEAD = 4


@dataclass
class AsyncQueryResult:
    """Column metadata and an asynchronous stream of row batches (or of rows, through :attr:`rows`)."""

    columns: tuple[ResultColumn, ...]
    batches: AsyncIterator[list[tuple[Any, ...]]]

    @property
    def rows(self) -> AsyncIterator[tuple[Any, ...]]:
        """The rows of the remaining batches, one by one."""
        return _rows_of(self.batches)


class QueryResult:
    """Column metadata and a synchronous stream of row tuples; close it (or use ``with``) when done.

    Rows cross from the engine's event loop in whole batches: a hand-over per row would
    cost a thread wake-up per row, more than the database's own work for large results.
    """

    def __init__(
        self, columns: tuple[ResultColumn, ...], batches: Iterator[list[tuple[Any, ...]]], closer: Any
    ) -> None:
        self.columns = columns
        self._rows = itertools.chain.from_iterable(batches)
        self._closer = closer

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self._rows

    def fetch_all(self) -> list[tuple[Any, ...]]:
        """All remaining rows (for small results)."""
        return list(self._rows)

    def close(self) -> None:
        """Stop the query: worker statements still running are cancelled."""
        self._closer()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueryEngine:
    """Runs ADQL queries on a cluster; one engine serves many queries, concurrently.

    Parameters
    ----------
    topology
        The coordinator and workers.
    statement_timeout_s
        Limit of every statement on a worker; a worker that exceeds it has its
        chunks retried on a replica.
    max_concurrency
        Statements running at once across the workers.
    inline_row_limit
        Largest nested-query result sent along to the workers.
    batch_rows
        Rows per batch fetched from a worker: what the engine holds per worker statement.
    direct_path
        Answer repeated one-chunk queries of synchronous callers directly
        (:mod:`sharding.coordinator.direct`); off, every query takes the general path.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        statement_timeout_s: float = 300.0,
        max_concurrency: int = 16,
        inline_row_limit: int = 100_000,
        batch_rows: int = 10_000,
        direct_path: bool = True,
    ) -> None:
        self.topology = topology
        self.inline_row_limit = inline_row_limit
        self.dispatcher = Dispatcher(
            topology, statement_timeout_s=statement_timeout_s, max_concurrency=max_concurrency, batch_rows=batch_rows
        )
        self._bridge: SyncBridge | None = None
        self._bridge_lock = threading.Lock()
        self._catalog: ClusterCatalog | None = None
        self._chunk_maps: dict[int, ChunkMap] = {}
        self._translations: dict[tuple[str, int | None], TranslatedQuery] = {}
        self.level_shapes = LevelShapeCache(TRANSLATION_CACHE_SIZE)
        self._direct_plans: dict[tuple[str, int | None], DirectPlan] = {}
        self._direct_lock = threading.Lock()
        self.direct_answers = 0  # queries answered by the direct path (diagnostics)
        self._direct = (
            DirectRunner(statement_timeout_s=statement_timeout_s, batch_rows=batch_rows)
            if direct_path and DirectRunner.supported()
            else None
        )
        self._metadata_epoch: int | None = None  # the coordinator's epoch when the caches were last emptied
        self._epoch_unreadable_until = 0.0  # monotonic time before which the epoch is not read again

    # ------------------------------------------------------------ metadata

    def refresh(self) -> None:
        """Forget cached catalogs, placement and plans; they are read again when next needed."""
        self._catalog = None
        self._chunk_maps = {}
        self._translations = {}
        self.level_shapes.clear()
        self._direct_plans = {}

    async def _start_metadata_check(self) -> _EpochCheck | None:
        """Begin checking the caches against the coordinator's epoch, beside the query.

        Cold caches are filled only after the epoch was read (None: nothing left
        to check), as are caches that the coordinator failed to confirm a moment ago.
        """
        planned_with = self._metadata_epoch
        if planned_with is None:
            await self._refresh_if_stale()
            return None
        if time.monotonic() < self._epoch_unreadable_until:
            return None
        task = asyncio.get_running_loop().create_task(self._refresh_if_stale(), name="dms-db metadata epoch")
        task.add_done_callback(_retrieve_outcome)
        return _EpochCheck(task, planned_with)

    async def _refresh_if_stale(self) -> int | None:
        """Empty the caches if the coordinator's metadata changed since they were emptied last.

        The epoch is read before anything is read into the emptied caches, so
        whatever they hold afterwards is at least as new as the epoch recorded.
        Returns the epoch read (None when the coordinator could not be asked).
        """
        warm = self._metadata_epoch is not None
        if warm and time.monotonic() < self._epoch_unreadable_until:
            return None  # the coordinator failed a moment ago: do not make every query wait for it
        try:
            rows = await self.dispatcher.coordinator_rows(METADATA_EPOCH_SQL)
        except NodeUnavailableError as exc:
            if not warm:
                raise
            # Queries that need only the workers go on with what was read before: while the
            # coordinator is down no load or deploy can commit, so it is at most as stale as
            # the changes committed just before the outage.
            self._epoch_unreadable_until = time.monotonic() + EPOCH_RETRY_AFTER_S
            log.warning("answering from cached metadata for %.0f s: %s", EPOCH_RETRY_AFTER_S, exc.message)
            return None
        epoch = int(rows[0][0])
        if epoch != self._metadata_epoch:
            self.refresh()
            registered = await self.dispatcher.coordinator_rows(ACTIVE_WORKERS_SQL)
            self.dispatcher.add_workers([NodeSpec(name, NodeRole.WORKER, dsn) for name, dsn, _ in registered])
            # Recorded last: a refresh cut short (its query cancelled) is done again by the next query.
            self._metadata_epoch = epoch
        return epoch

    def catalog(self) -> ClusterCatalog:
        """The deployed catalogs, read from the coordinator on first use."""
        if self._catalog is None:
            with self._coordinator_metadata() as conn:
                self._catalog = read_cluster_catalog(conn)
        return self._catalog

    def chunk_map(self, chunk_order: int) -> ChunkMap:
        """Replicas of every placed chunk of ``chunk_order``, read once and cached."""
        if chunk_order not in self._chunk_maps:
            with self._coordinator_metadata() as conn:
                self._chunk_maps[chunk_order] = ChunkMap.read(conn, chunk_order)
        return self._chunk_maps[chunk_order]

    @contextmanager
    def _coordinator_metadata(self) -> Iterator[psycopg.Connection]:
        """A short connection to the coordinator; its failures are query errors with a hint."""
        try:
            with psycopg.connect(self.topology.coordinator.dsn) as conn:
                yield conn
        except psycopg.Error as exc:
            raise coordinator_error(exc) from None

    def translate(self, adql_text: str, max_rows: int | None = None) -> TranslatedQuery:
        """Translate, remembering recent queries: services see the same query text again and again."""
        key = (adql_text, max_rows)
        found = self._translations.get(key)
        if found is None:
            found = translate(adql_text, self.catalog().tables, max_rows=max_rows)
            if len(self._translations) >= TRANSLATION_CACHE_SIZE:
                self._translations.pop(next(iter(self._translations)))
            self._translations[key] = found
        return found

    # ------------------------------------------------------------ async API

    @asynccontextmanager
    async def query_async(
        self, adql_text: str, *, max_rows: int | None = None, uploads: Sequence[UploadedTable] = ()
    ) -> AsyncIterator[AsyncQueryResult]:
        """Run a query; yields its columns and an async row stream, valid inside the ``async with``.

        ``uploads`` are tables the query may read as ``TAP_UPLOAD.<name>``.
        """
        check = await self._start_metadata_check()
        planned_with = check.planned_with if check is not None else self._trusted_epoch()
        try:
            opened = await self._opened(adql_text, max_rows, uploads, check, planned_with)
        except Exception:
            # Planned over metadata that has changed since (a table deployed, chunks
            # placed): the error may be the stale plan's, so plan again before failing.
            if check is None or not await check.stale():
                raise
            opened = None
        if opened is None:  # stale: planned again over the metadata the check read
            opened = await self._opened(adql_text, max_rows, uploads, None, self._trusted_epoch())
        assert opened is not None
        stack, result = opened
        async with stack:
            yield result

    def _trusted_epoch(self) -> int | None:
        """The epoch the caches hold, unless the coordinator could not confirm it a moment ago."""
        return None if time.monotonic() < self._epoch_unreadable_until else self._metadata_epoch

    async def _opened(
        self,
        adql_text: str,
        max_rows: int | None,
        uploads: Sequence[UploadedTable],
        check: _EpochCheck | None,
        planned_with: int | None,
    ) -> tuple[AsyncExitStack, AsyncQueryResult] | None:
        """Plan the query, run its nested phases and start its final one; the stack closes what it holds.

        None, with everything closed, when ``check`` finds the metadata stale before any row is seen.
        A one-chunk plan is kept for the direct path with ``planned_with``, the epoch of the caches
        it was made from (None: unknown, not kept).
        """
        async with AsyncExitStack() as stack:
            result, statement = await self._open(stack, adql_text, max_rows, uploads)
            if check is not None and await check.stale():
                return None
            confirmed = check is None or check.task.result() is not None  # None: the epoch read failed
            if statement is not None and planned_with is not None and confirmed:
                self._remember_direct((adql_text, max_rows), result.columns, statement, planned_with)
            return stack.pop_all(), result
        raise AssertionError("unreachable")  # for type checkers: the block returns or raises

    async def _open(
        self, stack: AsyncExitStack, adql_text: str, max_rows: int | None, uploads: Sequence[UploadedTable]
    ) -> tuple[AsyncQueryResult, _OneChunkStatement | None]:
        """Plan and start the query; also its one-chunk statement and look-ups, when it is one."""
        if uploads:
            extended = self.catalog().tables.with_tables(upload_table_info(upload) for upload in uploads)
            translated = translate(adql_text, extended, max_rows=max_rows)
        else:
            translated = self.translate(adql_text, max_rows)
        session = CoordinatorSession(self.dispatcher)
        stack.push_async_callback(session.aclose)
        planner = Planner(self, session)
        stack.push_async_callback(_clean_up, planner)
        if uploads:
            await planner.add_uploads(uploads, translated.tree)
        try:
            final = await planner.plan(translated.tree, translated.description, final=True)
        except psycopg.Error as exc:
            raise coordinator_error(exc) from None
        batches = await stack.enter_async_context(self._final_batches(final, session))
        statement = None
        if self._direct is not None and planner.one_chunk_statement is not None and not uploads:
            statement = (*planner.one_chunk_statement, tuple(planner.lookups))
        return AsyncQueryResult(translated.columns, batches), statement

    def _remember_direct(
        self,
        key: tuple[str, int | None],
        columns: tuple[ResultColumn, ...],
        statement: _OneChunkStatement,
        epoch: int,
    ) -> None:
        """Keep a one-chunk plan for the synchronous API's direct path (:mod:`sharding.coordinator.direct`)."""
        sql_text, replicas, lookups = statement
        with self._direct_lock:  # synchronous callers read and drop plans from their own threads
            if key not in self._direct_plans and len(self._direct_plans) >= TRANSLATION_CACHE_SIZE:
                self._direct_plans.pop(next(iter(self._direct_plans)))
            self._direct_plans[key] = DirectPlan(columns, sql_text, replicas, lookups, epoch)

    def direct_plan(self, adql_text: str, max_rows: int | None = None) -> DirectPlan | None:
        """The plan kept for answering ``adql_text`` directly, if any (for tests and diagnostics)."""
        return self._direct_plans.get((adql_text, max_rows))

    @asynccontextmanager
    async def _final_batches(self, final: FinalStep, session: CoordinatorSession) -> AsyncIterator[Any]:
        if final.on_coordinator:
            async with _coordinator_batches(await session.get(), final.sql) as batches:
                yield batches
            return
        stream = final.stream(self.dispatcher)
        try:
            await stream.start()
            yield _cut(stream.batches(), final.skip, final.take) if final.capped else stream.batches()
        finally:
            await stream.aclose()

    # ------------------------------------------------------------ sync API

    def _sync_bridge(self) -> SyncBridge:
        with self._bridge_lock:
            if self._bridge is None:
                self._bridge = SyncBridge()
            return self._bridge

    def query(
        self, adql_text: str, *, max_rows: int | None = None, uploads: Sequence[UploadedTable] = ()
    ) -> QueryResult:
        """Run a query from synchronous code; iterate the result, then close it.

        A text answered before from one chunk is answered directly from this thread
        when its plan still holds (:mod:`sharding.coordinator.direct`).
        """
        if not uploads:
            direct = self._direct_answer((adql_text, max_rows))
            if direct is not None:
                return direct
        bridge = self._sync_bridge()

        async def columns_then_batches() -> AsyncIterator[Any]:
            # One task for the whole query: planning and the first rows need no extra hand-over.
            async with self.query_async(adql_text, max_rows=max_rows, uploads=uploads) as result:
                yield result.columns
                async for batch in result.batches:
                    yield batch

        iterator = bridge.iterate(columns_then_batches(), max_queued=SYNC_BATCHES_AHEAD)
        try:
            columns = next(iterator)  # or the query's error
        except BaseException:
            iterator.close()
            raise
        return QueryResult(columns, iterator, iterator.close)

    def _direct_answer(self, key: tuple[str, int | None]) -> QueryResult | None:
        plan = self._direct_plans.get(key)
        if plan is None or self._direct is None:
            return None
        topology = self.dispatcher.topology
        batches = self._direct.run(plan, {w.name: w for w in topology.workers}, topology.coordinator)
        with self._direct_lock:
            if batches is None:  # the plan no longer holds, or a node failed: the general path answers
                if self._direct_plans.get(key) is plan:  # not a newer one another thread kept
                    del self._direct_plans[key]
                return None
            self.direct_answers += 1
        return QueryResult(plan.columns, batches, batches.close)

    def close(self) -> None:
        """Close every connection pool."""
        if self._direct is not None:
            self._direct.close()
        bridge = self._bridge
        if bridge is not None:
            bridge.run(self.dispatcher.close())
            bridge.close()
            self._bridge = None

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _EpochCheck:
    """The epoch read running beside a query planned over the caches of epoch ``planned_with``."""

    task: asyncio.Task[int | None]
    planned_with: int

    async def stale(self) -> bool:
        """Whether the metadata changed since the query began (the epoch read again differs).

        Shielded: a query cancelled meanwhile must not cut short a refresh other queries rely on.
        """
        epoch = await asyncio.shield(self.task)  # a finished task gives its result again
        return epoch is not None and epoch != self.planned_with


def _retrieve_outcome(task: asyncio.Task[int | None]) -> None:
    """Mark a finished epoch read's error as seen: a query that failed first does not ask for it."""
    if not task.cancelled():
        task.exception()


async def _clean_up(planner: Planner) -> None:
    with suppress(psycopg.Error):
        await planner.cleanup()


async def _cut(
    batches: AsyncGenerator[list[tuple[Any, ...]], None], skip: int, take: int | None
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows of ``batches`` after the first ``skip``, at most ``take`` of them (None: all)."""
    async with aclosing(batches):  # closing the stream stops the workers still running
        async for batch in batches:
            if skip:
                dropped = min(skip, len(batch))
                batch, skip = batch[dropped:], skip - dropped
            if take is not None:
                batch = batch[:take]
                take -= len(batch)
            if batch:
                yield batch
            if take == 0:
                return


async def _rows_of(batches: AsyncIterator[list[tuple[Any, ...]]]) -> AsyncIterator[tuple[Any, ...]]:
    async for batch in batches:
        for row in batch:
            yield row


@asynccontextmanager
async def _coordinator_batches(session: psycopg.AsyncConnection, sql_text: str) -> AsyncIterator[Any]:
    """Stream a merge query's rows from the coordinator with a server-side cursor, in batches."""
    async with session.transaction(), session.cursor(name="dms_final") as cursor:
        try:
            await cursor.execute(sql_text)
        except psycopg.Error as exc:
            raise coordinator_error(exc) from None

        async def batches() -> AsyncIterator[list[tuple[Any, ...]]]:
            while True:
                try:
                    batch = await cursor.fetchmany(COORDINATOR_BATCH_ROWS)
                except psycopg.Error as exc:
                    raise coordinator_error(exc) from None
                if not batch:
                    return
                yield batch

        yield batches()
