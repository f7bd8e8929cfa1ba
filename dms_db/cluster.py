"""Cluster-level services: resolve the nodes, bring the cluster up, report its state.

The CLI and the service call these functions; they work the same for the local
cluster and for existing remote servers named by DSN.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy import select

from dms_db import migration_support
from dms_db.config import DmsConfig, load_config
from dms_db.distributed_transaction import WORKER_SET_LOCK
from dms_db.errors import AlreadyExistsError, ClusterError, NodeUnavailableError, UserError
from dms_db.local_cluster import LocalCluster
from dms_db.metadata import node as node_table
from dms_db.metadata import node_identity
from dms_db.topology import NodeRole, NodeSpec, Topology, remote_topology
from dms_db.worker_catchup import catch_up_worker


def configured_topology(config: DmsConfig) -> Topology:
    """The nodes named by the configuration alone (local cluster or DSNs)."""
    if config.uses_local_cluster:
        return LocalCluster(config).topology()
    assert config.coordinator_dsn is not None
    return remote_topology(config.coordinator_dsn, config.worker_dsns)


def registered_workers(coordinator: NodeSpec) -> tuple[NodeSpec, ...]:
    """Active workers recorded on the coordinator (empty before the first migration)."""
    engine = migration_support.node_engine(coordinator.dsn)
    try:
        with engine.connect() as conn:
            exists = conn.exec_driver_sql("SELECT to_regclass('dms.node')").scalar()
            if exists is None:
                return ()
            rows = conn.execute(
                select(node_table.c.name, node_table.c.dsn)
                .where(node_table.c.state == "active")
                .order_by(node_table.c.node_id)
            ).all()
    finally:
        engine.dispose()
    return tuple(NodeSpec(name, NodeRole.WORKER, dsn) for name, dsn in rows)


def resolve_topology(config: DmsConfig) -> Topology:
    """Configured nodes plus workers registered later with ``cluster add-worker``."""
    base = configured_topology(config)
    try:
        extra = registered_workers(base.coordinator)
    except Exception as exc:  # unreachable coordinator: report it, never a traceback
        raise NodeUnavailableError(
            f"coordinator ({base.coordinator.safe_address}) cannot be reached: {str(exc).splitlines()[0]}",
            hint="start it with 'dms-db cluster start' or check coordinator_dsn",
        ) from None
    return base.with_workers(extra)


def topology_for_migrations() -> Topology:
    """Entry point for ``alembic`` run by hand: the configuration decides the nodes."""
    return resolve_topology(load_config())


def register_nodes(topology: Topology) -> None:
    """Record the workers on the coordinator and give each worker its identity (idempotent)."""
    with psycopg.connect(topology.coordinator.dsn) as conn:
        for worker in topology.workers:
            conn.execute(
                "INSERT INTO dms.node (name, role, dsn) VALUES (%s, 'worker', %s) "
                "ON CONFLICT (name) DO UPDATE SET dsn = EXCLUDED.dsn",
                (worker.name, worker.dsn),
            )
    identity = sql.Identifier(node_identity.schema or "", node_identity.name)
    for worker in topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            conn.execute(sql.SQL("DELETE FROM {}").format(identity))
            conn.execute(sql.SQL("INSERT INTO {} (node_name) VALUES (%s)").format(identity), (worker.name,))


def bring_up(config: DmsConfig) -> Topology:
    """Create/start the local servers if configured, migrate every node, register workers."""
    if config.uses_local_cluster:
        LocalCluster(config).init()
    base = configured_topology(config)
    migration_support.upgrade(base)
    topology = resolve_topology(config)
    if topology != base:
        migration_support.upgrade(topology)
    register_nodes(topology)
    return topology


def add_worker(config: DmsConfig, dsn: str, name: str | None = None) -> NodeSpec:
    """Register an existing PostgreSQL database as a new worker: migrate it, then catch it up.

    Every deployed catalog is created on it and replicated tables' rows are
    copied to it (:mod:`dms_db.worker_catchup`) before it is registered.
    Chunks are not moved to it here; placement sends new chunks to it.
    """
    topology = resolve_topology(config)
    if any(w.dsn == dsn for w in topology.workers):
        raise AlreadyExistsError("this DSN is already a worker of the cluster")
    name = name or _next_worker_name(topology)
    if any(w.name == name for w in topology.workers):
        raise AlreadyExistsError(f"a worker named {name!r} exists", hint="choose another --name")
    worker = NodeSpec(name, NodeRole.WORKER, dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
    except psycopg.Error as exc:
        raise UserError(
            f"cannot prepare the new worker ({worker.safe_address}): {str(exc).splitlines()[0]}",
            hint="check the DSN, and that pgSphere is installed on that server",
        ) from None
    migration_support.upgrade(Topology(topology.coordinator, (worker,)))
    with psycopg.connect(topology.coordinator.dsn) as guard:
        # Held until the worker is registered: no load or deploy runs meanwhile (each holds it shared).
        if not guard.execute("SELECT pg_try_advisory_xact_lock(%s)", (WORKER_SET_LOCK,)).fetchone()[0]:
            raise ClusterError(
                "a load or deploy is running; the new worker would miss its changes",
                hint="run add-worker again when it has finished",
            )
        try:
            catch_up_worker(topology, worker)
        except psycopg.Error as exc:
            raise UserError(
                f"cannot copy the cluster's catalogs to the new worker ({worker.safe_address}): "
                f"{str(exc).splitlines()[0]}",
                hint="nothing was registered; check the workers with 'dms-db cluster status' and run add-worker again",
            ) from None
        register_nodes(Topology(topology.coordinator, (worker,)))
    return worker


def _next_worker_name(topology: Topology) -> str:
    taken = {w.name for w in topology.workers}
    index = len(topology.workers) + 1
    while f"worker-{index}" in taken:
        index += 1
    return f"worker-{index}"


@dataclass(frozen=True)
class NodeStatus:
    """The health of one node as ``dms-db cluster status`` shows it."""

    name: str
    role: NodeRole
    address: str
    state: str
    revision: str | None
    detail: str = ""

    @property
    def is_up(self) -> bool:
        """True when the node answers queries."""
        return self.state == "up"


def cluster_status(config: DmsConfig) -> list[NodeStatus]:
    """Probe every node; a node that is down is reported, never raised."""
    base = configured_topology(config)
    try:
        topology = base.with_workers(registered_workers(base.coordinator))
    except Exception:  # coordinator down: still report the configured nodes
        topology = base
    head = migration_support.head_revision()
    report = []
    for node in topology.nodes:
        try:
            revision = migration_support.node_revision(node)
        except NodeUnavailableError as exc:
            report.append(NodeStatus(node.name, node.role, node.safe_address, "down", None, exc.message))
            continue
        detail = "" if revision == head else f"schema behind head {head}: run 'alembic upgrade head'"
        report.append(NodeStatus(node.name, node.role, node.safe_address, "up", revision, detail))
    return report
