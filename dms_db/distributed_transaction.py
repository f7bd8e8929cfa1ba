"""Atomic changes across the coordinator and several workers (two-phase commit).

Every participant does its work in its own transaction and ``PREPARE
TRANSACTION``s it; then the coordinator commits, in its own transaction, a row
of ``dms.transaction_outcome`` naming the global id: that commit *is* the
decision.  Only then are the workers' transactions ``COMMIT PREPARED``.  If the
process dies in between, :func:`resolve_in_doubt` finishes the job: a prepared
transaction whose gid has a decision row is committed, one without is rolled
back (presumed abort).  Deploys and loads both go through here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from dms_db import fault_points
from dms_db.errors import ClusterError, NodeUnavailableError
from dms_db.metadata import ACTIVE_WORKERS_SQL
from dms_db.topology import NodeSpec, Topology

log = logging.getLogger(__name__)
GID_PREFIX = "dms:"
#: Advisory lock on the coordinator guarding the set of workers: every distributed transaction
#: holds it shared until its decision commits; ``cluster add-worker`` takes it exclusively.
WORKER_SET_LOCK = 0x646D735F776B7273  # "dms_wkrs"


def new_gid(purpose: str) -> str:
    """A fresh global transaction id; the prefix lets recovery find dms-db's own."""
    return f"{GID_PREFIX}{purpose}:{uuid.uuid4().hex}"


def participant_gid(gid: str, node_name: str) -> str:
    """The prepared-transaction id of one participant.

    PostgreSQL's prepared-transaction ids are unique per server, and two
    workers may be databases of one server, so each participant gets its own.
    """
    return f"{gid}@{node_name}"


def global_gid(prepared_gid: str) -> str:
    """The global id a participant's prepared transaction belongs to."""
    return prepared_gid.rsplit("@", 1)[0]


@dataclass
class DistributedTransaction:
    """Open connections, one transaction each, to the coordinator and the workers."""

    gid: str
    purpose: str
    coordinator: psycopg.Connection
    workers: dict[str, psycopg.Connection]

    def on(self, worker_name: str) -> psycopg.Connection:
        """The connection to one worker, inside the distributed transaction."""
        return self.workers[worker_name]


def _connect(node: NodeSpec) -> psycopg.Connection:
    try:
        return psycopg.connect(node.dsn, autocommit=False)
    except psycopg.OperationalError as exc:
        raise NodeUnavailableError(
            f"{node.role} {node.name} ({node.safe_address}) cannot be reached: {str(exc).strip().splitlines()[0]}",
            hint="check 'dms-db cluster status'; nothing was changed",
        ) from None


@contextmanager
def distributed_transaction(
    topology: Topology, purpose: str, gid: str | None = None
) -> Iterator[DistributedTransaction]:
    """Run a block on all nodes and commit it everywhere or nowhere.

    Exceptions inside the block roll back every participant.  Failures while
    preparing roll back those already prepared.  Once the decision is committed
    on the coordinator, the change is durable even if committing on a worker
    fails: recovery completes it.
    """
    gid = gid or new_gid(purpose)
    with ExitStack() as stack:
        coordinator = stack.enter_context(_connect(topology.coordinator))
        workers = {w.name: stack.enter_context(_connect(w)) for w in topology.workers}
        for conn in (coordinator, *workers.values()):
            # Open the transaction now: psycopg's conn.transaction() blocks used by callers
            # (COPY, partition creation) then nest as savepoints instead of committing alone.
            conn.execute("SELECT 1")
        _hold_worker_set(coordinator, topology, purpose)
        txn = DistributedTransaction(gid, purpose, coordinator, workers)
        try:
            yield txn
        except BaseException:
            for conn in (coordinator, *workers.values()):
                _quiet_rollback(conn)
            raise
        prepared: list[tuple[str, psycopg.Connection]] = []
        try:
            fault_points.reach(f"{purpose}:before-prepare")
            for name, conn in workers.items():
                conn.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(participant_gid(gid, name))))
                prepared.append((name, conn))
                fault_points.reach(f"{purpose}:prepared-{len(prepared)}")
            coordinator.execute("INSERT INTO dms.transaction_outcome (gid, purpose) VALUES (%s, %s)", (gid, purpose))
            coordinator.commit()
        except BaseException:
            for name, conn in prepared:
                _finish_prepared(conn, participant_gid(gid, name), commit=False)
            for conn in (coordinator, *workers.values()):
                _quiet_rollback(conn)
            raise
        fault_points.reach(f"{purpose}:decided")
        for name, conn in prepared:
            try:
                _finish_prepared(conn, participant_gid(gid, name), commit=True)
            except psycopg.Error:
                log.warning("commit of %s on %s deferred to recovery", gid, name)


def _hold_worker_set(coordinator: psycopg.Connection, topology: Topology, purpose: str) -> None:
    """Keep the set of workers fixed until the decision commits, and check this change reaches all of them.

    A worker registered after the caller read its topology would miss this
    change, or be given chunks (placement reads the registered workers) that
    no connection here can write: the change is refused before anything is done.
    """
    coordinator.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WORKER_SET_LOCK,))
    registered = {name for name, _dsn, _node_id in coordinator.execute(ACTIVE_WORKERS_SQL)}
    unknown = sorted(registered - {w.name for w in topology.workers})
    if unknown:
        raise ClusterError(
            f"workers were added since this {purpose} read the cluster's topology: {', '.join(unknown)}; "
            "nothing was changed",
            hint="run it again",
        )


def _finish_prepared(conn: psycopg.Connection, gid: str, commit: bool) -> None:
    verb = "COMMIT PREPARED {}" if commit else "ROLLBACK PREPARED {}"
    conn.autocommit = True
    try:
        conn.execute(sql.SQL(verb).format(sql.Literal(gid)))
    finally:
        conn.autocommit = False


def _quiet_rollback(conn: psycopg.Connection) -> None:
    try:
        if not conn.closed and not conn.autocommit:
            conn.rollback()
    except psycopg.Error:
        pass


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`resolve_in_doubt` did."""

    committed: tuple[str, ...]
    rolled_back: tuple[str, ...]
    unreachable: tuple[str, ...]


def resolve_in_doubt(
    topology: Topology, min_age_seconds: float = 0.0, owner_alive: Callable[[str, float], bool] | None = None
) -> RecoveryReport:
    """Commit or roll back dms-db's prepared transactions left on workers.

    A transaction with a decision row is committed (that is what its writer
    would do next).  One without is rolled back, unless its writer may still
    be running: prepared less than ``min_age_seconds`` ago, or
    ``owner_alive(global_gid, age_seconds)`` says so.
    """
    committed: list[str] = []
    rolled_back: list[str] = []
    unreachable: list[str] = []
    with psycopg.connect(topology.coordinator.dsn) as coordinator:
        for worker in topology.workers:
            try:
                conn = psycopg.connect(worker.dsn, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError:
                unreachable.append(worker.name)
                continue
            with conn:
                rows = conn.execute(
                    "SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts "
                    "WHERE database = current_database() "
                    "AND gid LIKE %s AND prepared < now() - make_interval(secs => %s)",
                    (GID_PREFIX + "%@" + worker.name, min_age_seconds),
                ).fetchall()
                for gid, age in rows:
                    decided = coordinator.execute(
                        "SELECT 1 FROM dms.transaction_outcome WHERE gid = %s", (global_gid(gid),)
                    ).fetchone()
                    if decided is None and owner_alive is not None and owner_alive(global_gid(gid), age):
                        continue
                    _finish_prepared(conn, gid, commit=decided is not None)
                    (committed if decided else rolled_back).append(f"{worker.name}:{gid}")
    return RecoveryReport(tuple(committed), tuple(rolled_back), tuple(unreachable))
