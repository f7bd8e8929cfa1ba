"""Repeated one-chunk queries answered from the caller's thread, without the event loop.

Most catalog queries are small: a cone of a few arcminutes, an object by id,
a light curve.  Their whole answer comes from one statement on one worker
(one chunk), which costs that worker about a tenth of a millisecond, while
the general path (event loop, attempts, the thread hand-over of the
synchronous API, a transaction with a cursor) costs several times that.

For a query text whose plan was such a statement, the engine keeps a
:class:`DirectPlan`: the worker SQL, the chunk's replicas, the director-index
look-ups the chunk was found with (and their answers) and the metadata epoch
it was planned under.  :class:`DirectRunner` then answers the text again
with blocking connections of its own:

1. one simple-protocol message to the coordinator reads the epoch and repeats
   the look-ups;
2. without waiting for it, one simple-protocol statement on the first live
   replica of the chunk (the one the look-ups found before), in libpq's
   chunked-rows mode: rows arrive in batches of bounded size, and the
   connection's session settings (read only, statement timeout) stand in for
   the general path's transaction; the statement is prepared on the connection
   the first time, so PostgreSQL plans it once per connection;
3. before any row is handed over, the epoch and the look-ups' answers must
   equal the plan's: the plan is still the one the general path would make,
   and the statement sent in step 2 was the right one.  Both round trips
   overlap, so a look-up by id costs one round trip, not two.

Anything else (the metadata moved, a look-up answers differently, a node or
the coordinator fails, the statement fails) ends the direct attempt before
the caller saw a row: :meth:`DirectRunner.run` returns None and the engine
answers through the general path, which retries replicas, refreshes its
metadata and reports errors in its words.  Once rows were handed over, a
failure aborts the query, as on the general path.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import generators, pq
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result
from psycopg.waiting import wait

from adql import ResultColumn
from dms_db.metadata import METADATA_EPOCH_SQL
from dms_db.topology import NodeSpec
from sharding.coordinator.failures import is_node_fault, node_failure, partial_result_error, query_error

__all__ = ["DirectBatches", "DirectPlan", "DirectRunner", "Lookup"]

APPLICATION_NAME = "dms-db direct"
#: A node whose direct statement failed is left to the general path this long.
AVOID_FAILED_NODE_S = 5.0
#: Idle connections kept per node.
IDLE_CONNECTIONS_PER_NODE = 8
#: Statements prepared per connection; texts beyond are sent whole each time.
PREPARED_PER_CONNECTION = 512

Batch = list[tuple]


@dataclass(frozen=True)
class Lookup:
    """A director-index look-up the plan's chunk came from: its literal SQL and the chunks it found."""

    sql: str
    chunks: frozenset[int]


@dataclass(frozen=True)
class DirectPlan:
    """A query text's plan as one statement on one chunk, valid while epoch and look-ups are unchanged."""

    columns: tuple[ResultColumn, ...]
    sql: str
    replicas: tuple[str, ...]  # nodes holding the chunk, in preference order
    lookups: tuple[Lookup, ...]
    epoch: int

    @property
    def check_sql(self) -> bytes:
        """The coordinator message: the epoch, then each look-up."""
        return "; ".join([METADATA_EPOCH_SQL, *(lookup.sql for lookup in self.lookups)]).encode()


class DirectRunner:
    """Blocking connections per node, and the direct answer of a :class:`DirectPlan`."""

    def __init__(self, *, statement_timeout_s: float, batch_rows: int, connect_timeout_s: float = 10.0) -> None:
        self.statement_timeout_s = statement_timeout_s
        self.batch_rows = batch_rows
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[str, list[psycopg.Connection]] = {}
        self._avoid_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection, dict[str, str]] = weakref.WeakKeyDictionary()
        self._names = itertools.count(1)

    def run(self, plan: DirectPlan, nodes: Mapping[str, NodeSpec], coordinator: NodeSpec) -> DirectBatches | None:
        """The answer's batches (close them to stop early), or None to take the general path."""
        node = self._pick(plan.replicas, nodes)
        if node is None:
            return None
        check = self._take(coordinator, worker=False)
        if check is None:
            return None
        worker: psycopg.Connection | None = None
        confirmed = False
        try:
            check.pgconn.send_query(plan.check_sql)
            worker = self._take(nodes[node], worker=True)
            if worker is None:
                return None
            try:
                message, prepared = self._message(worker, plan.sql)
                _send(worker, message, self.batch_rows)
                first = _next_batch(worker)
                prepared()
            except (psycopg.Error, OSError) as exc:
                if is_node_fault(exc):
                    self.avoid(node)
                return None
            confirmed = _confirms(check, plan)
        except (psycopg.Error, OSError):
            return None  # the coordinator failed: the general path says so, or answers from its caches
        finally:
            self.give_back(coordinator.name, check)
            if worker is not None and not confirmed:
                self.give_back(node, worker)
        if not confirmed:
            return None
        return DirectBatches(self, nodes[node], worker, first)

    def give_back(self, node: str, conn: psycopg.Connection) -> None:
        """Keep ``conn`` for the next query once it is idle again, else close it.

        A statement still sending rows is cancelled and what it sent is read.
        """
        with contextlib.suppress(psycopg.Error, OSError):
            if not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                conn.cancel_safe(timeout=5.0)
                _drain(conn.pgconn)
        if not self._closed and not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            with self._lock:
                idle = self._idle.setdefault(node, [])
                if len(idle) < IDLE_CONNECTIONS_PER_NODE:
                    idle.append(conn)
                    return
        conn.close()

    def avoid(self, node: str) -> None:
        """Leave ``node`` to the general path for a while: it just failed a direct statement."""
        self._avoid_until[node] = time.monotonic() + AVOID_FAILED_NODE_S

    def close(self) -> None:
        """Close every idle connection."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn in connections:
                conn.close()

    # -- internals ---------------------------------------------------------

    def _message(self, conn: psycopg.Connection, sql_text: str) -> tuple[bytes, Callable[[], None]]:
        """The message running ``sql_text`` on ``conn``, and what to call once it succeeded.

        A text is prepared on each connection the first time it runs there (PREPARE and
        EXECUTE in one message), then only executed: PostgreSQL plans it once per
        connection, not once per query (a tenth of a millisecond over partitioned tables).
        """
        with self._lock:
            names = self._prepared.setdefault(conn, {})
        name = names.get(sql_text)
        if name is not None:
            return f"EXECUTE {name}".encode(), _nothing
        if len(names) >= PREPARED_PER_CONNECTION:
            return sql_text.encode(), _nothing
        name = f"dms_direct_{next(self._names)}"  # never reused, so a failed PREPARE leaves no clash
        return f"PREPARE {name} AS {sql_text}; EXECUTE {name}".encode(), lambda: names.__setitem__(sql_text, name)

    def _pick(self, replicas: Sequence[str], nodes: Mapping[str, NodeSpec]) -> str | None:
        now = time.monotonic()
        for node in replicas:
            if node in nodes and self._avoid_until.get(node, 0.0) <= now:
                return node
        return None

    def _take(self, node: NodeSpec, *, worker: bool) -> psycopg.Connection | None:
        """An idle connection to ``node``, or a new one; None when the node cannot be reached."""
        with self._lock:
            idle = self._idle.get(node.name)
            if idle:
                return idle.pop()
        options = "-c default_transaction_read_only=on"
        if worker:
            options += f" -c statement_timeout={round(self.statement_timeout_s * 1000)}"
        try:
            return psycopg.connect(
                node.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name=APPLICATION_NAME,
                options=options,
            )
        except psycopg.Error:
            if worker:
                self.avoid(node.name)
            return None


class DirectBatches:
    """The batches of a direct answer, from a worker connection held until the end or :meth:`close`."""

    def __init__(self, runner: DirectRunner, node: NodeSpec, conn: psycopg.Connection, first: Batch | None) -> None:
        self._runner = runner
        self._node = node
        self._conn: psycopg.Connection | None = conn
        self._first = first
        self._started = False

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        conn = self._conn
        if conn is None:
            raise StopIteration
        if not self._started:
            self._started = True
            batch = self._first
            self._first = None
        else:
            batch = self._next(conn)
        if batch is None:
            self.close()
            raise StopIteration
        return batch

    def close(self) -> None:
        """Give the connection back; a statement still sending rows is cancelled first."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._runner.give_back(self._node.name, conn)

    def _next(self, conn: psycopg.Connection) -> Batch | None:
        try:
            return _next_batch(conn)
        except (psycopg.Error, OSError) as exc:
            self.close()
            if is_node_fault(exc):
                self._runner.avoid(self._node.name)
                reason = node_failure(exc, self._runner.statement_timeout_s).reason
                raise partial_result_error(self._node.name, self._node.safe_address, reason) from None
            if isinstance(exc, psycopg.Error):
                raise query_error(exc) from None
            raise


def _confirms(conn: psycopg.Connection, plan: DirectPlan) -> bool:
    """Whether the coordinator's answers (epoch, then look-ups) are those the plan was made with."""
    results = _all_results(conn)
    if len(results) != 1 + len(plan.lookups) or len(results[0]) != 1 or results[0][0][0] != plan.epoch:
        return False
    return all(
        frozenset(int(row[0]) for row in rows) == lookup.chunks
        for rows, lookup in zip(results[1:], plan.lookups, strict=True)
    )


def _nothing() -> None:
    pass


def _send(conn: psycopg.Connection, query: bytes, batch_rows: int) -> None:
    """Send one simple-protocol statement whose rows come in batches of at most ``batch_rows``."""
    pgconn = conn.pgconn
    pgconn.send_query(query)
    pgconn.set_chunked_rows_mode(batch_rows)


def _next_batch(conn: psycopg.Connection) -> Batch | None:
    """The rows of the statement's next result, or None once it has ended (errors raise)."""
    pgconn = conn.pgconn
    while True:
        result = wait(generators.fetch(pgconn), pgconn.socket)
        if result is None:
            return None
        status = result.status
        if status == pq.ExecStatus.TUPLES_CHUNK:
            return _rows(conn, result)
        if status == pq.ExecStatus.TUPLES_OK:
            rows = _rows(conn, result)  # 0 rows: the end marker after chunks, or an empty answer
            if rows:
                return rows
            continue
        if status == pq.ExecStatus.FATAL_ERROR:
            error = error_from_result(result, encoding=conn.info.encoding)
            _drain(pgconn)
            raise error
        # COMMAND_OK and others carry no rows


def _rows(conn: psycopg.Connection, result: pq.abc.PGresult) -> Batch:
    transformer = Transformer(conn)
    transformer.set_pgresult(result)
    return transformer.load_rows(0, result.ntuples, tuple)


def _all_results(conn: psycopg.Connection) -> list[Batch]:
    """Every result of the message last sent on ``conn``, as rows; an error raises."""
    pgconn = conn.pgconn
    results: list[Batch] = []
    while (result := wait(generators.fetch(pgconn), pgconn.socket)) is not None:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = error_from_result(result, encoding=conn.info.encoding)
            _drain(pgconn)
            raise error
        results.append(_rows(conn, result) if result.status == pq.ExecStatus.TUPLES_OK else [])
    return results


def _drain(pgconn: pq.abc.PGconn) -> None:
    """Read the results left after an error, so that the connection is idle again."""
    with contextlib.suppress(psycopg.Error):
        while wait(generators.fetch(pgconn), pgconn.socket) is not None:
            pass
