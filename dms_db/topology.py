"""Which nodes make up a deployment and how to reach them.

A topology is the same whether the servers are a local cluster or existing
remote PostgreSQL databases: a coordinator and a list of workers, each named
and reachable by a libpq DSN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import psycopg

from dms_db.errors import NotFoundError


class NodeRole(StrEnum):
    """What a node does in the cluster."""

    COORDINATOR = "coordinator"
    WORKER = "worker"


@dataclass(frozen=True)
class NodeSpec:
    """A node: its stable name, role and connection string."""

    name: str
    role: NodeRole
    dsn: str

    @property
    def safe_address(self) -> str:
        """host:port/dbname of the node, without credentials, for messages and logs."""
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        host = params.get("host") or params.get("hostaddr") or "localhost"
        return f"{host}:{params.get('port', 5432)}/{params.get('dbname', '')}"


@dataclass(frozen=True)
class Topology:
    """The coordinator and the workers of a deployment."""

    coordinator: NodeSpec
    workers: tuple[NodeSpec, ...]

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """Coordinator first, then workers."""
        return (self.coordinator, *self.workers)

    def worker(self, name: str) -> NodeSpec:
        """The worker called ``name``."""
        for node in self.workers:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.workers)
        raise NotFoundError(f"no worker named {name!r}", hint=f"known workers: {known}")

    def with_workers(self, extra: tuple[NodeSpec, ...]) -> Topology:
        """This topology plus workers registered later (``cluster add-worker``)."""
        known = {n.name for n in self.workers}
        added = tuple(n for n in extra if n.name not in known)
        return Topology(self.coordinator, self.workers + added)


def remote_topology(coordinator_dsn: str, worker_dsns: list[str]) -> Topology:
    """Topology of existing servers named by DSN in the configuration."""
    workers = tuple(NodeSpec(f"worker-{i}", NodeRole.WORKER, dsn) for i, dsn in enumerate(worker_dsns, start=1))
    return Topology(NodeSpec("coordinator", NodeRole.COORDINATOR, coordinator_dsn), workers)
