"""Real PostgreSQL servers for the test suite.

One server per test session (run as an unprivileged account when the tests run
as root), fresh databases per test cloned from a template that already has
pgSphere, and "clusters" whose coordinator and workers are databases of that
server.  ``DMS_TEST_DSN`` points the suite at an existing server instead; its
user must be allowed to create databases.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from dms_db import migration_support
from dms_db.cluster import register_nodes
from dms_db.config import DmsConfig, LocalClusterConfig
from dms_db.ports import free_port_block
from dms_db.postgres_server import PostgresServer, ServerSettings
from dms_db.service_account import resolve_service_account
from dms_db.topology import NodeRole, NodeSpec, Topology

TEMPLATE_DB = "dms_test_template"


def make_scratch_dir(prefix: str) -> Path:
    """A temp directory the unprivileged server account can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


class TestServer:
    """A PostgreSQL server that hands out fresh databases."""

    __test__ = False

    def __init__(self, admin_dsn: str, owned: PostgresServer | None = None) -> None:
        self.admin_dsn = admin_dsn
        self.owned = owned
        self._names = (f"t{uuid.uuid4().hex[:6]}_{i}" for i in itertools.count())
        self._ensure_template()

    @classmethod
    def start_private(cls) -> TestServer:
        """Initialise and start a throwaway server (fsync off) in a temp directory."""
        home = make_scratch_dir("dms-db-test-")
        server = PostgresServer(
            home / "server",
            ServerSettings(port=free_port_block(1), fsync=False, max_connections=300),
            resolve_service_account(),
            home / "credentials" / "pgpass",
        )
        server.init()
        server.start()
        return cls(server.dsn("postgres"), owned=server)

    def dsn(self, dbname: str) -> str:
        """DSN of a database on this server."""
        params = psycopg.conninfo.conninfo_to_dict(self.admin_dsn)
        params["dbname"] = dbname
        return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})

    def create_database(self, name: str | None = None) -> str:
        """A new database with pgSphere; returns its DSN."""
        name = name or next(self._names)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE_DB))
            )
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        """Drop a database made by :meth:`create_database`."""
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def shutdown(self) -> None:
        """Stop and delete a private server."""
        if self.owned is not None:
            self.owned.stop()
            shutil.rmtree(self.owned.home.parent, ignore_errors=True)

    def _ensure_template(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone():
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
        with psycopg.connect(self.dsn(TEMPLATE_DB), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")


@dataclass(frozen=True)
class DatabaseCluster:
    """A coordinator and N workers that are databases of one test server."""

    topology: Topology
    config: DmsConfig

    @property
    def coordinator_dsn(self) -> str:
        """DSN of the coordinator database."""
        return self.topology.coordinator.dsn


def build_database_cluster(server: TestServer, workers: int, replication: int = 1) -> DatabaseCluster:
    """Create, migrate and register a cluster of ``workers`` databases."""
    coordinator = NodeSpec("coordinator", NodeRole.COORDINATOR, server.create_database())
    nodes = tuple(NodeSpec(f"worker-{i}", NodeRole.WORKER, server.create_database()) for i in range(1, workers + 1))
    topology = Topology(coordinator, nodes)
    migration_support.upgrade(topology)
    register_nodes(topology)
    config = DmsConfig(
        coordinator_dsn=coordinator.dsn,
        worker_dsns=[n.dsn for n in nodes],
        replication=replication,
    )
    return DatabaseCluster(topology, config)


def drop_database_cluster(server: TestServer, cluster: DatabaseCluster) -> None:
    """Drop every database of a cluster."""
    for node in cluster.topology.nodes:
        server.drop_database(node.dsn)


def local_cluster_config(workers: int) -> DmsConfig:
    """Configuration of a private local cluster (its own servers) for tests that kill servers."""
    home = make_scratch_dir("dms-db-cluster-")
    return DmsConfig(
        local=LocalClusterConfig(
            workers=workers,
            data_dir=home,
            base_port=free_port_block(workers + 1),
            fsync=False,
            shared_buffers_mb=32,
        )
    )


def external_or_private_server() -> Iterator[TestServer]:
    """The session's server: ``DMS_TEST_DSN`` if set, else a private one."""
    external = os.environ.get("DMS_TEST_DSN")
    if external:
        yield TestServer(external)
        return
    server = TestServer.start_private()
    try:
        yield server
    finally:
        server.shutdown()
