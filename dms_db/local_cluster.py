"""The embedded default: a coordinator and N worker PostgreSQL servers on this machine.

Layout under the configured data directory::

    coordinator/            pgdata, postgres.log, run/ (socket)
    worker-1/ ... worker-N/
    credentials/pgpass      libpq password file, readable only by the invoking user

Every operation is idempotent: ``init`` on an initialised cluster only adds
missing servers and refreshes managed settings, ``start`` skips running servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from dms_db.config import DmsConfig
from dms_db.postgres_server import PostgresServer, ServerSettings, ServerState
from dms_db.service_account import resolve_service_account
from dms_db.topology import NodeRole, NodeSpec, Topology

COORDINATOR_NAME = "coordinator"


def worker_name(index: int) -> str:
    """Name of the i-th local worker (1-based), used for its directory and node name."""
    return f"worker-{index}"


@dataclass(frozen=True)
class ServerStatus:
    """One line of ``dms-db cluster status`` for a local server."""

    name: str
    role: NodeRole
    port: int
    state: ServerState


class LocalCluster:
    """Creates, starts, stops and reports the servers of the local cluster."""

    def __init__(self, config: DmsConfig) -> None:
        self.config = config
        self.local = config.local
        self.account = resolve_service_account(self.local.service_user)
        self.passfile = self.local.data_dir / "credentials" / "pgpass"

    def servers(self) -> Iterator[tuple[str, NodeRole, PostgresServer]]:
        """The coordinator first, then the workers in order."""
        yield COORDINATOR_NAME, NodeRole.COORDINATOR, self._server(COORDINATOR_NAME, 0)
        for index in range(1, self.local.workers + 1):
            yield worker_name(index), NodeRole.WORKER, self._server(worker_name(index), index)

    def init(self) -> list[str]:
        """Initialise missing servers, start them all, create the databases.

        Returns the names of servers that were newly initialised.
        """
        self.local.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.local.data_dir, 0o755)
        created = []
        for name, _role, server in self.servers():
            if server.init():
                created.append(name)
            server.start()
            server.ensure_database(self.config.database)
        return created

    def start(self) -> list[str]:
        """Start every server that is not running; return the names started."""
        return [name for name, _role, server in self.servers() if server.start()]

    def stop(self) -> list[str]:
        """Stop every running server; return the names stopped."""
        stopped = []
        for name, _role, server in reversed(list(self.servers())):
            if server.stop():
                stopped.append(name)
        return stopped

    def status(self) -> list[ServerStatus]:
        """Report each server's state without raising when one is down."""
        return [ServerStatus(name, role, server.settings.port, server.state()) for name, role, server in self.servers()]

    def server(self, name: str) -> PostgresServer:
        """The server called ``name`` (``coordinator`` or ``worker-i``)."""
        for server_name, _role, server in self.servers():
            if server_name == name:
                return server
        raise KeyError(name)

    def topology(self) -> Topology:
        """Connection details of the local nodes, as a real deployment would give them."""
        nodes = [NodeSpec(name, role, server.dsn(self.config.database)) for name, role, server in self.servers()]
        return Topology(coordinator=nodes[0], workers=tuple(nodes[1:]))

    def _server(self, name: str, offset: int) -> PostgresServer:
        settings = ServerSettings(
            port=self.local.base_port + offset,
            host=self.local.host,
            shared_buffers_mb=self.local.shared_buffers_mb,
            fsync=self.local.fsync,
            wal_level=self.local.wal_level,
            # The coordinator merges alone; the workers share the machine with each other.
            max_parallel_workers_per_gather=self.local.worker_parallelism() if offset else None,
        )
        return PostgresServer(self.local.data_dir / name, settings, self.account, self.passfile, self.local.bin_dir)
