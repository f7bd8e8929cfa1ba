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
2. without waiting for it, one simple-protocol statement on the first of the
   chunk's replicas that has not failed in the last few seconds, in libpq's
   chunked-rows mode: rows arrive in batches of bounded size, and the worker
   connection's session settings (read only, statement timeout) stand in for
   the general path's transaction; the statement is prepared on the
   connection the first time, so PostgreSQL plans it once per connection;
3. before any row is handed over, the epoch and the look-ups' answers must
   equal the plan's: the plan is still the one the general path would make,
   and the statement sent in step 2 was the right one.  Both round trips
   overlap, so a look-up by id costs one round trip, not two.

Anything else (the metadata moved, a look-up answers differently, a node or
the coordinator fails, the statement fails) ends the direct attempt before
the caller saw a row: :meth:`DirectRunner.run` returns None and the engine
answers through the general path, which retries replicas, refreshes its
metadata and reports errors in its words.  Once rows were handed over, a
failure aborts the query, as on the general path.  An idle connection that
broke meanwhile (a restarted worker) is replaced once before the node counts
as failed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import generators, pq
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result
from psycopg.waiting import wait

from adql import ResultColumn
from dms_db.metadata import METADATA_EPOCH_SQL
from dms_db.topology import NodeRole, NodeSpec
from sharding.coordinator.execution import CANCEL_GRACE_S
from sharding.coordinator.failures import is_node_fault, node_failure, one_line, partial_result_error, query_error
from sharding.coordinator.pruning import Lookup

__all__ = ["DirectBatches", "DirectPlan", "DirectRunner"]

log = logging.getLogger(__name__)

APPLICATION_NAME = "dms-db direct"
#: A node whose direct statement failed is left to the general path this long.
AVOID_FAILED_NODE_S = 5.0
#: Idle connections kept per node.
IDLE_CONNECTIONS_PER_NODE = 8
#: Statements prepared per connection; the next one first deallocates them all.
PREPARED_PER_CONNECTION = 512
#: libpq's chunked-rows mode, which the direct path reads its rows with, came with version 17.
CHUNKED_ROWS_LIBPQ = 170000

Batch = list[tuple]


@dataclass(frozen=True)
class DirectPlan:
    """A query text's plan as one statement on one chunk, valid while epoch and look-ups are unchanged."""

    columns: tuple[ResultColumn, ...]
    sql: str
    replicas: tuple[str, ...]  # nodes holding the chunk, in preference order
    lookups: tuple[Lookup, ...]
    epoch: int

    @functools.cached_property
    def check_sql(self) -> bytes:
        """The coordinator message: the epoch, then each look-up."""
        return "; ".join([METADATA_EPOCH_SQL, *(lookup.literal_sql() for lookup in self.lookups)]).encode()


@dataclass(eq=False)
class _Connection:
    """A blocking connection of the runner and the statements prepared on it (SQL text -> name)."""

    conn: psycopg.Connection
    prepared: dict[str, str] = field(default_factory=dict)
    reused: bool = False  # taken from the idle list (it may have broken while idle)


class DirectRunner:
    """Blocking connections per node, and the direct answer of a :class:`DirectPlan`."""

    def __init__(self, *, statement_timeout_s: float, batch_rows: int, connect_timeout_s: float = 10.0) -> None:
        self.statement_timeout_s = statement_timeout_s
        self.batch_rows = batch_rows
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[str, list[_Connection]] = {}
        self._avoid_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._names = itertools.count(1)

    @staticmethod
    def supported() -> bool:
        """Whether the libpq psycopg uses can read rows in chunks (else the engine keeps no direct plans)."""
        return pq.version() >= CHUNKED_ROWS_LIBPQ

    def run(self, plan: DirectPlan, nodes: Mapping[str, NodeSpec], coordinator: NodeSpec) -> DirectBatches | None:
        """The answer's batches (close them to stop early), or None to take the general path."""
        node = self._pick(plan.replicas, nodes)
        if node is None or self._avoided(coordinator.name):
            return None
        check = self._take(coordinator, fresh=False)
        if check is None:
            return None
        with contextlib.suppress(psycopg.Error, OSError):  # a broken connection shows when its answer is read
            _send(check.conn, plan.check_sql)
        worker: _Connection | None = None
        confirmed = False
        try:
            worker, first = self._start(nodes[node], plan.sql)
            if worker is None:
                return None
            confirmed, check = self._confirm(coordinator, check, plan)
        finally:
            if check is not None:
                self.give_back(coordinator.name, check, cancel=False)
            if worker is not None and not confirmed:
                self.give_back(node, worker)
        if not confirmed:
            return None
        return DirectBatches(self, nodes[node], worker, first)

    def avoid(self, node: str) -> None:
        """Leave ``node`` to the general path for a while: it just failed a direct statement."""
        self._avoid_until[node] = time.monotonic() + AVOID_FAILED_NODE_S

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                entry.conn.close()

    # -- internals ---------------------------------------------------------

    def _start(self, node: NodeSpec, sql_text: str) -> tuple[_Connection | None, Batch | None]:
        """Send the statement to ``node`` and read its first batch; (None, None) when that failed."""
        for fresh in (False, True):
            entry = self._take(node, fresh=fresh)
            if entry is None:
                return None, None
            message, prepared = self._message(entry, sql_text)
            try:
                _send(entry.conn, message, self.batch_rows)
                first = _next_batch(entry.conn)
            except (psycopg.Error, OSError) as exc:
                broke_while_idle = entry.reused and entry.conn.broken
                # Closed, not kept: it may hold a statement prepared by a message that failed.
                entry.conn.close()
                if broke_while_idle:
                    self._drop_idle(node.name)  # broke while idle (a restarted worker): so did its siblings
                    continue
                log.debug("direct path: %s failed the statement: %s", node.name, one_line(exc))
                if is_node_fault(exc):
                    self.avoid(node.name)
                return None, None
            prepared()
            return entry, first
        return None, None

    def _confirm(self, coordinator: NodeSpec, check: _Connection, plan: DirectPlan) -> tuple[bool, _Connection | None]:
        """Whether the coordinator's answers to the check sent on ``check`` hold the plan, and the connection.

        A connection that broke while idle is replaced once and the check sent again.
        """
        entry: _Connection | None = check
        for fresh in (False, True):
            if fresh:
                entry = self._take(coordinator, fresh=True)
                if entry is None:
                    return False, None
            assert entry is not None
            try:
                if fresh:
                    _send(entry.conn, plan.check_sql)
                confirmed = _confirms(entry.conn, plan)
            except (psycopg.Error, OSError) as exc:
                broke_while_idle = entry.reused and entry.conn.broken
                entry.conn.close()
                if broke_while_idle:
                    self._drop_idle(coordinator.name)
                    continue
                log.debug("direct path: the coordinator failed: %s", one_line(exc))
                self.avoid(coordinator.name)
                return False, None
            if not confirmed:
                log.debug("direct path: the metadata or a director look-up changed since the plan")
            return confirmed, entry
        return False, None

    def _message(self, entry: _Connection, sql_text: str) -> tuple[bytes, Callable[[], None]]:
        """The message running ``sql_text`` on ``entry``, and what to call once it succeeded.

        A text is prepared on each connection the first time it runs there (PREPARE and
        EXECUTE in one message), then only executed: PostgreSQL plans it once per
        connection, not once per query (a tenth of a millisecond over partitioned tables).
        """
        name = entry.prepared.get(sql_text)
        if name is not None:
            return f"EXECUTE {name}".encode(), _nothing
        full = len(entry.prepared) >= PREPARED_PER_CONNECTION
        name = f"dms_direct_{next(self._names)}"  # never reused, so a failed PREPARE leaves no clash
        message = f"{'DEALLOCATE ALL; ' if full else ''}PREPARE {name} AS {sql_text}; EXECUTE {name}"

        def prepared() -> None:
            if full:
                entry.prepared.clear()
            entry.prepared[sql_text] = name

        return message.encode(), prepared

    def _pick(self, replicas: Sequence[str], nodes: Mapping[str, NodeSpec]) -> str | None:
        return next((node for node in replicas if node in nodes and not self._avoided(node)), None)

    def _avoided(self, node: str) -> bool:
        return self._avoid_until.get(node, 0.0) > time.monotonic()

    def _take(self, node: NodeSpec, *, fresh: bool) -> _Connection | None:
        """An idle connection to ``node`` (unless ``fresh``), or a new one; None when it cannot be reached."""
        if not fresh:
            with self._lock:
                idle = self._idle.get(node.name)
                if idle:
                    entry = idle.pop()
                    entry.reused = True
                    return entry
        settings = "-c default_transaction_read_only=on"
        if node.role is NodeRole.WORKER:
            settings += f" -c statement_timeout={round(self.statement_timeout_s * 1000)}"
        try:
            conn = psycopg.connect(
                node.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name=APPLICATION_NAME,
                options=_with_options(node.dsn, settings),
            )
        except psycopg.Error as exc:
            log.debug("direct path: cannot connect to %s: %s", node.name, one_line(exc))
            self.avoid(node.name)
            return None
        return _Connection(conn)

    def give_back(self, node: str, entry: _Connection, *, cancel: bool = True) -> None:
        """Keep ``entry`` once it is idle again, else close it.

        A statement still running is cancelled (``cancel``) or read to its end (the
        coordinator's short check); a connection that cannot be brought back is closed.
        """
        conn = entry.conn
        if not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            try:
                if cancel:
                    conn.cancel_safe(timeout=CANCEL_GRACE_S)
                _drain(conn.pgconn)
            except (psycopg.Error, OSError):
                conn.close()
        if not conn.closed and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            with self._lock:
                idle = self._idle.setdefault(node, [])
                if not self._closed and len(idle) < IDLE_CONNECTIONS_PER_NODE:
                    entry.reused = False
                    idle.append(entry)
                    return
        conn.close()

    def _drop_idle(self, node: str) -> None:
        with self._lock:
            entries = self._idle.pop(node, [])
        for entry in entries:
            entry.conn.close()


class DirectBatches:
    """The batches of a direct answer, from a worker connection held until the end or :meth:`close`."""

    def __init__(self, runner: DirectRunner, node: NodeSpec, entry: _Connection, first: Batch | None) -> None:
        self._runner = runner
        self._node = node
        self._entry: _Connection | None = entry
        self._first = first
        self._started = False

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        entry = self._entry
        if entry is None:
            raise StopIteration
        if not self._started:
            self._started = True
            batch, self._first = self._first, None
        else:
            batch = self._next(entry.conn)
        if batch is None:
            self.close()
            raise StopIteration
        return batch

    def close(self) -> None:
        """Give the connection back; a statement still sending rows is cancelled first."""
        entry, self._entry = self._entry, None
        if entry is not None:
            self._runner.give_back(self._node.name, entry)

    def _next(self, conn: psycopg.Connection) -> Batch | None:
        try:
            return _next_batch(conn)
        except (psycopg.Error, OSError) as exc:
            self.close()
            if not is_node_fault(exc) and isinstance(exc, psycopg.Error):
                raise query_error(exc) from None
            self._runner.avoid(self._node.name)
            reason = node_failure(exc, self._runner.statement_timeout_s).reason
            raise partial_result_error(self._node.name, self._node.safe_address, reason) from None


def _confirms(conn: psycopg.Connection, plan: DirectPlan) -> bool:
    """Whether the coordinator's answers (epoch, then look-ups) are those the plan was made with."""
    results = _all_results(conn)
    if len(results) != 1 + len(plan.lookups) or len(results[0]) != 1 or results[0][0][0] != plan.epoch:
        return False
    return all(
        frozenset(int(row[0]) for row in rows) == lookup.chunks
        for rows, lookup in zip(results[1:], plan.lookups, strict=True)
    )


def _with_options(dsn: str, settings: str) -> str:
    """``settings`` after the options the DSN (or PGOPTIONS) already gives, which the keyword would replace."""
    own = psycopg.conninfo.conninfo_to_dict(dsn).get("options") or os.environ.get("PGOPTIONS", "")
    return f"{own} {settings}".strip()


def _nothing() -> None:
    pass


def _send(conn: psycopg.Connection, message: bytes, batch_rows: int | None = None) -> None:
    """Send one simple-protocol message whole; with ``batch_rows``, its rows come in batches of that size."""
    pgconn = conn.pgconn
    pgconn.send_query(message)
    if batch_rows is not None:
        pgconn.set_chunked_rows_mode(batch_rows)
    wait(generators.send(pgconn), pgconn.socket)  # the connection is non-blocking: flush what is left


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
        # COMMAND_OK (PREPARE, DEALLOCATE) carries no rows


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
