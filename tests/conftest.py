"""Shared fixtures: real PostgreSQL servers, fresh databases, 1- and 4-worker clusters."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from dms_db.local_cluster import LocalCluster
from tests.harness import (
    DatabaseCluster,
    TestServer,
    build_database_cluster,
    drop_database_cluster,
    external_or_private_server,
    local_cluster_config,
)

# Tests must never pick up a developer's own configuration.
for _name in [n for n in os.environ if n.startswith("DMS_") and n != "DMS_TEST_DSN"]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    """One PostgreSQL 15 server (with pgSphere) for the whole session."""
    yield from external_or_private_server()


@pytest.fixture
def fresh_dsn(pg_server: TestServer) -> Iterator[str]:
    """A new, empty database with pgSphere, dropped after the test."""
    dsn = pg_server.create_database()
    yield dsn
    pg_server.drop_database(dsn)


@pytest.fixture
def make_cluster(pg_server: TestServer) -> Iterator[Callable[..., DatabaseCluster]]:
    """Factory of migrated clusters whose nodes are databases of the session server."""
    made: list[DatabaseCluster] = []

    def factory(workers: int, replication: int = 1) -> DatabaseCluster:
        cluster = build_database_cluster(pg_server, workers, replication)
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        drop_database_cluster(pg_server, cluster)


@pytest.fixture(params=[1, 4], ids=["1worker", "4workers"])
def cluster(request: pytest.FixtureRequest, make_cluster: Callable[..., DatabaseCluster]) -> DatabaseCluster:
    """A migrated cluster, once with 1 worker and once with 4."""
    return make_cluster(request.param)


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    """A real local cluster of 4 worker servers and a coordinator, private to one module."""
    config = local_cluster_config(workers=4)
    cluster = LocalCluster(config)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(config.local.data_dir, ignore_errors=True)
