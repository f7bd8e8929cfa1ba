"""One query's worker statements, their failures and their retries on replicas.

An :class:`Execution` turns a :class:`WorkPlan` (units of work, the nodes that
can do each, the SQL for a set of units) into attempts: one statement per
chosen node covering all the units given to it.  Each attempt runs in a
``BEGIN READ ONLY`` transaction with a local ``statement_timeout``, under the
dispatcher's concurrency bound.  What an attempt does with the statement's
result is the job of a :class:`Sink` (stream it to the caller, or copy it to
a coordinator temp table).

Latency is mostly round trips, so an attempt opens its transaction, declares
its cursor and fetches the first batch in one simple-protocol message
(:meth:`Execution.open_cursor`), and an attempt whose rows are all delivered
counts as done before its ``ROLLBACK``: the caller does not wait for it, and
the dispatcher waits for such tasks only when it closes.

When an attempt fails because of its node (cannot connect, server gone,
statement timeout), the node is excluded for the rest of the query and the
attempt's units go to their other replicas, unless the sink already handed
rows of that attempt to the caller: then the query fails, since a retry would
duplicate or lose rows.  When the query itself is at fault (SQLSTATE 22,
42...), nothing is retried and the caller gets PostgreSQL's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import psycopg
from psycopg import pq, sql

from sharding.coordinator.chunk_map import assign_chunks
from sharding.coordinator.failures import (
    is_node_fault,
    node_failure,
    partial_result_error,
    query_error,
    unavailable_error,
)
from sharding.coordinator.node_pools import NodePool, NodePools, is_mid_statement

if TYPE_CHECKING:
    from collections.abc import Iterable

Query = str | sql.Composable

#: How long cancelled statements get to end cleanly before their tasks are cancelled outright.
CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class ResultColumnType:
    """A result column as the worker returned it."""

    name: str
    type_sql: str  # format_type() of the column, usable in CREATE TABLE on the coordinator


@dataclass(frozen=True)
class WorkPlan:
    """What to run: units (chunk ids) and their candidate nodes, in preference order.

    ``chunked`` is False for a statement that is not about chunks (one pseudo
    unit), so that messages do not mention chunks.  ``describe_only`` runs
    the statement only as far as learning its columns.
    """

    replicas: Mapping[int, tuple[str, ...]]
    sql_for: Callable[[Sequence[int]], Query]
    chunked: bool = True
    describe_only: bool = False


class AttemptState(enum.Enum):
    """Where an attempt is; RUNNING means admitted but no result yet."""

    PENDING = "pending"
    RUNNING = "running"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


@dataclass(eq=False)
class Attempt:
    """One statement on one node for some units."""

    number: int
    node: str
    units: tuple[int, ...]
    state: AttemptState = AttemptState.PENDING
    conn: psycopg.AsyncConnection | None = None
    task: asyncio.Task[None] | None = None
    first: list[tuple] | None = None  # the first batch, held back until the caller takes it
    batches: asyncio.Queue[list[tuple]] = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    released: bool = False  # some of its rows reached the caller: it can no longer be retried
    cursors: list[psycopg.AsyncCursor] = field(default_factory=list)  # closed once the transaction ends
    opened: bool = False  # the node answered the opening message: a retry could repeat rows


class Sink(Protocol):
    """What an attempt does with its statement on a connection outside any transaction."""

    async def consume(self, execution: Execution, attempt: Attempt, conn: psycopg.AsyncConnection) -> None:
        """Open the transaction and a cursor with ``execution.open_cursor``, then deliver the rows."""


class Execution:
    """The attempts of one query, with failover and cancellation."""

    def __init__(
        self,
        pools: NodePools,
        semaphore: asyncio.Semaphore,
        plan: WorkPlan,
        sink: Sink,
        *,
        statement_timeout_s: float,
        tasks: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.pools = pools
        self.semaphore = semaphore
        self.tasks = tasks if tasks is not None else set()  # every attempt task, until it ends (dispatcher-wide)
        self.plan = plan
        self.sink = sink
        self.statement_timeout_s = statement_timeout_s
        self.attempts: list[Attempt] = []
        self.failures: dict[str, str] = {}  # node -> reason, nodes excluded for this query
        self.timed_out: set[str] = set()
        self.error: BaseException | None = None
        self.columns: list[ResultColumnType] | None = None
        self.closing = False
        self.changed = asyncio.Event()
        self._numbers = itertools.count(1)

    # -- launching ---------------------------------------------------------

    def launch(self) -> None:
        """Start one attempt per chosen node over every unit of the plan."""
        self._assign(list(self.plan.replicas))

    def query_for(self, attempt: Attempt) -> Query:
        """The statement of an attempt, without a trailing semicolon (it may be wrapped in COPY)."""
        query = self.plan.sql_for(attempt.units)
        return query.strip().rstrip(";") if isinstance(query, str) else query

    def _assign(self, units: Iterable[int]) -> None:
        busy: dict[str, int] = {}
        for attempt in self.live_attempts():
            if attempt.state is not AttemptState.DONE:
                busy[attempt.node] = busy.get(attempt.node, 0) + len(attempt.units)
        assignment, lost = assign_chunks(self.plan.replicas, units, excluded=self.failures, loads=busy)
        if lost:
            self.fail(self._unavailable(lost))
            return
        for node, node_units in assignment.items():
            attempt = Attempt(next(self._numbers), node, tuple(node_units))
            self.attempts.append(attempt)
            attempt.task = asyncio.get_running_loop().create_task(
                self._run(attempt), name=f"dms-db attempt {attempt.number} on {node}"
            )
            self.tasks.add(attempt.task)
            attempt.task.add_done_callback(self.tasks.discard)

    def _unavailable(self, lost: Sequence[int]) -> BaseException:
        candidates = {node for unit in lost for node in self.plan.replicas.get(unit, ())}
        failures = {node: reason for node, reason in self.failures.items() if node in candidates}
        return unavailable_error(
            lost if self.plan.chunked else None,
            failures,
            {node: self.pools.address(node) for node in failures},
            timeouts_only=all(node in self.timed_out for node in failures),
        )

    # -- running -----------------------------------------------------------

    async def _run(self, attempt: Attempt) -> None:
        try:
            async with self.semaphore:
                if self.closing or self.error is not None:
                    return
                attempt.state = AttemptState.RUNNING
                self.notify()
                await self._on_node(attempt)
        except asyncio.CancelledError:
            if attempt.state is not AttemptState.DONE:  # a done attempt's rows stand
                attempt.state = AttemptState.FAILED
            raise
        except Exception as exc:
            if attempt.state is not AttemptState.DONE:
                self._attempt_failed(attempt, exc)
        finally:
            self.notify()

    async def _on_node(self, attempt: Attempt) -> None:
        pool = self.pools[attempt.node]
        for last_try in (False, True):
            conn = attempt.conn = await pool.acquire()
            try:
                await self.sink.consume(self, attempt, conn)
                break
            except BaseException as exc:
                await _interrupt(conn)
                await self._hand_back(attempt, pool, conn)
                # A pooled connection that died while idle (its server restarted) gets one more
                # try, on a fresh pool (the broken one made it suspect), before the node fails.
                if last_try or not _lost_before_answering(exc, conn, attempt):
                    raise
        # Every row is delivered: the caller need not wait for the ROLLBACK.
        attempt.state = AttemptState.DONE
        self.notify()
        await self._hand_back(attempt, pool, conn)

    @staticmethod
    async def _hand_back(attempt: Attempt, pool: NodePool, conn: psycopg.AsyncConnection) -> None:
        """End the transaction and give the connection back; a broken one makes its pool suspect."""
        await _end_transaction(conn)
        if conn.broken or conn.closed:
            pool.mark_suspect()
        attempt.conn = None
        # After ROLLBACK (or with the connection gone) this costs no round trip.
        for cursor in attempt.cursors:
            with contextlib.suppress(Exception):
                await cursor.close()
        attempt.cursors.clear()
        await pool.release(conn)

    async def open_cursor(
        self, conn: psycopg.AsyncConnection, attempt: Attempt, first_rows: int, query: Query | None = None
    ) -> psycopg.AsyncCursor:
        """Open the read-only transaction, declare the attempt's cursor and fetch up to ``first_rows``, at once.

        One simple-protocol message instead of four round trips (BEGIN, DECLARE, describe,
        FETCH).  Returns a client cursor positioned on the FETCH's result, whose description
        is the statement's; :func:`fetch_statement` gives the next batches.  ``query`` is
        ``query_for(attempt)`` when the caller needs it too.
        """
        query = self.query_for(attempt) if query is None else query
        timeout_ms = round(self.statement_timeout_s * 1000)
        # Plain text where the parts are ours: composing with psycopg.sql costs more
        # Python time than the whole round trip of a small query's statement.
        prefix = f"BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout_ms}; "
        prefix += f"DECLARE {quoted_cursor_name(attempt)} NO SCROLL CURSOR FOR "
        fetch = fetch_statement(attempt, first_rows)
        opening: Query = (
            f"{prefix}{query}; {fetch}"
            if isinstance(query, str)
            else sql.Composed([sql.SQL(prefix), query, sql.SQL(f"; {fetch}")])
        )
        cursor = conn.cursor()
        attempt.cursors.append(cursor)
        await cursor.execute(opening)
        attempt.opened = True
        while cursor.nextset():
            pass  # to the FETCH's result, the last one
        return cursor

    def _attempt_failed(self, attempt: Attempt, exc: Exception) -> None:
        attempt.state = AttemptState.FAILED
        attempt.first = None
        if self.closing or self.error is not None:
            return
        if not is_node_fault(exc):
            if isinstance(exc, psycopg.Error):
                error = query_error(exc)
                error.__cause__ = exc
                self.fail(error)
            else:
                self.fail(exc)
            return
        failure = node_failure(exc, self.statement_timeout_s)
        self.failures[attempt.node] = failure.reason
        if failure.timeout:
            self.timed_out.add(attempt.node)
        if attempt.released:
            self.fail(partial_result_error(attempt.node, self.pools.address(attempt.node), failure.reason))
            return
        self._assign(attempt.units)

    # -- observing ---------------------------------------------------------

    def live_attempts(self) -> list[Attempt]:
        """Attempts that did not fail (their rows count)."""
        return [a for a in self.attempts if a.state is not AttemptState.FAILED]

    def failed_attempt_numbers(self) -> list[int]:
        """Attempts whose rows, if any were written, must be discarded."""
        return [a.number for a in self.attempts if a.state is AttemptState.FAILED]

    def all_done(self) -> bool:
        """Every live attempt finished its statement."""
        return all(a.state is AttemptState.DONE for a in self.live_attempts())

    def started(self) -> bool:
        """No admitted attempt is still waiting for its first result, and one has it (or all ended).

        Attempts still waiting for a concurrency slot do not count: they can
        only start once the caller consumes rows of the others.
        """
        live = self.live_attempts()
        if all(a.state is AttemptState.DONE for a in live):
            return True
        if any(a.state is AttemptState.RUNNING for a in live):
            return False
        return any(a.state in (AttemptState.STREAMING, AttemptState.DONE) for a in live)

    def notify(self) -> None:
        """Wake whoever waits for a change of state."""
        self.changed.set()

    def fail(self, error: BaseException) -> None:
        """End the query with ``error`` (the first one wins)."""
        if self.error is None:
            self.error = error
        self.notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; raise the query's error as soon as there is one."""
        while True:
            if self.error is not None:
                raise self.error
            if predicate():
                return
            self.changed.clear()
            await self.changed.wait()

    async def learn_columns(self, conn: psycopg.AsyncConnection, cursor: psycopg.AsyncCursor) -> list[ResultColumnType]:
        """The result columns of ``cursor`` (described, not necessarily fetched), once per query."""
        if self.columns is None:
            self.columns = await describe_columns(conn, cursor)
        return self.columns

    # -- stopping ----------------------------------------------------------

    async def cancel(self) -> None:
        """Stop every attempt: cancel running statements on their servers, then their tasks.

        Attempts that are done only end their transaction: they are neither cancelled nor waited for.
        """
        self.closing = True
        stopping = [a for a in self.attempts if a.state is not AttemptState.DONE]
        tasks = [a.task for a in stopping if a.task is not None and not a.task.done()]
        in_statement = [a.conn for a in stopping if a.conn is not None and is_mid_statement(a.conn)]
        for attempt in stopping:
            if attempt.task is not None and (attempt.conn is None or not is_mid_statement(attempt.conn)):
                attempt.task.cancel()
        await asyncio.gather(*(_cancel_on_server(conn) for conn in in_statement))
        if tasks:
            # A cancelled statement ends with an error the attempt ignores while closing, and
            # its connection goes back clean; only stragglers are cancelled outright.
            _, pending = await asyncio.wait(tasks, timeout=CANCEL_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


FIRST_NORMAL_OBJECT_ID = 16384
"""PostgreSQL's FirstNormalObjectId: OIDs below it are built in, the same on every server."""

_BUILTIN_TYPE_NAMES: dict[tuple[int, int], str] = {}


async def describe_columns(conn: psycopg.AsyncConnection, cursor: psycopg.AsyncCursor) -> list[ResultColumnType]:
    """Names and SQL types of a described result; types named by the node that knows their OIDs.

    Built-in types are named once per process: their OIDs and names are the same on
    every PostgreSQL server, so most queries need no round trip here.  Extension
    types (pgSphere's) have per-database OIDs and are always asked.  The fields are
    read from the result itself, which costs less than building ``cursor.description``.
    """
    result = cursor.pgresult
    if result is None or not result.nfields:
        return []
    encoding = conn.info.encoding
    fields = [(result.fname(i) or b"", result.ftype(i), result.fmod(i)) for i in range(result.nfields)]
    asked: dict[tuple[int, int], str] = {}
    unknown = sorted({(oid, mod) for _, oid, mod in fields if (oid, mod) not in _BUILTIN_TYPE_NAMES})
    if unknown:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT t, m, format_type(t, m) FROM unnest(%s::oid[], %s::int[]) AS u(t, m)",
                ([oid for oid, _ in unknown], [mod for _, mod in unknown]),
            )
            for oid, mod, type_sql in await cur.fetchall():
                asked[(int(oid), int(mod))] = type_sql
                if int(oid) < FIRST_NORMAL_OBJECT_ID:
                    _BUILTIN_TYPE_NAMES[(int(oid), int(mod))] = type_sql
    return [
        ResultColumnType(name.decode(encoding), _BUILTIN_TYPE_NAMES.get((oid, mod)) or asked[(oid, mod)])
        for name, oid, mod in fields
    ]


def cursor_name(attempt: Attempt) -> str:
    """The server-side cursor of an attempt (unique within its connection's transaction)."""
    return f"dms_dispatch_{attempt.number}"


def quoted_cursor_name(attempt: Attempt) -> str:
    """:func:`cursor_name` as an SQL identifier (letters, digits and ``_`` only, so quoting is enough)."""
    return f'"{cursor_name(attempt)}"'


def fetch_statement(attempt: Attempt, rows: int) -> str:
    """``FETCH FORWARD rows`` from the attempt's cursor (0 fetches nothing but still describes)."""
    return f"FETCH FORWARD {int(rows)} FROM {quoted_cursor_name(attempt)}"


def _lost_before_answering(exc: BaseException, conn: psycopg.AsyncConnection, attempt: Attempt) -> bool:
    """The connection broke on the attempt's opening message, so trying again cannot repeat rows."""
    return isinstance(exc, psycopg.OperationalError) and conn.broken and not attempt.opened


async def _end_transaction(conn: psycopg.AsyncConnection) -> None:
    """ROLLBACK (read only: nothing to commit), which also closes the cursors; never raises."""
    if conn.closed or conn.broken or conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(Exception):  # the pool discards a connection it cannot reset
        await conn.execute("ROLLBACK")


async def _interrupt(conn: psycopg.AsyncConnection) -> None:
    """After an exception mid-statement: stop the statement on the server and drop the connection."""
    if conn.closed or not is_mid_statement(conn):
        return
    await _cancel_on_server(conn)
    await conn.close()


async def _cancel_on_server(conn: psycopg.AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.cancel_safe(timeout=CANCEL_GRACE_S)
