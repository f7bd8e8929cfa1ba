"""Fixtures of the correctness suite: the data set, the unsharded reference, one cluster per configuration.

Everything heavy is session-scoped: the data set is simulated and read once,
the reference database is built once, and each of the four cluster
configurations is built and loaded once (pytest groups the tests by
configuration, so only one cluster exists at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from adql import TableCatalog
from tests.harness import DatabaseCluster, TestServer, build_database_cluster, drop_database_cluster
from tests.query.compare import Answer
from tests.query.dataset import QueryDataset, build_dataset, load_cluster
from tests.query.reference import build_reference, coordinator_catalog, dataset_kinds

REFERENCE_TIMEOUT = "120s"


@dataclass(frozen=True)
class Configuration:
    """Workers and replication of one cluster configuration."""

    workers: int
    replication: int

    @property
    def id(self) -> str:
        """Pytest id, e.g. ``w4r2``."""
        return f"w{self.workers}r{self.replication}"


CONFIGURATIONS = (Configuration(1, 1), Configuration(2, 2), Configuration(4, 1), Configuration(4, 2))


@dataclass(frozen=True)
class LoadedCluster:
    """A cluster holding the data set, and the ADQL catalog read from its coordinator."""

    configuration: Configuration
    cluster: DatabaseCluster
    catalog: TableCatalog


@pytest.fixture(scope="session")
def query_dataset() -> QueryDataset:
    """The simulated survey plus the real catalogs present."""
    return build_dataset()


@pytest.fixture(scope="session")
def reference_dsn(pg_server: TestServer, query_dataset: QueryDataset) -> Iterator[str]:
    """DSN of the unsharded reference database."""
    dsn = pg_server.create_database()
    build_reference(dsn, query_dataset)
    yield dsn
    pg_server.drop_database(dsn)


@pytest.fixture(scope="session")
def reference_connection(reference_dsn: str) -> Iterator[psycopg.Connection]:
    """A read-only autocommit connection to the reference."""
    with psycopg.connect(reference_dsn, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"SET statement_timeout = '{REFERENCE_TIMEOUT}'")
        yield conn


@pytest.fixture(scope="session")
def reference_catalog(reference_connection: psycopg.Connection, query_dataset: QueryDataset) -> TableCatalog:
    """The catalog read from the reference's own TAP_SCHEMA (for checking the corpus without a cluster)."""
    return TableCatalog.from_tap_schema(reference_connection, dataset_kinds(query_dataset))


@pytest.fixture(scope="session")
def reference_answers() -> dict[str, Answer]:
    """Reference answers by translated SQL text, shared by every configuration."""
    return {}


@pytest.fixture(scope="session", params=CONFIGURATIONS, ids=[c.id for c in CONFIGURATIONS])
def loaded_cluster(
    request: pytest.FixtureRequest, pg_server: TestServer, query_dataset: QueryDataset
) -> Iterator[LoadedCluster]:
    """A cluster of one configuration holding the whole data set."""
    configuration: Configuration = request.param
    cluster = build_database_cluster(pg_server, configuration.workers, configuration.replication)
    try:
        load_cluster(cluster, query_dataset, configuration.replication)
        yield LoadedCluster(configuration, cluster, coordinator_catalog(cluster.coordinator_dsn))
    finally:
        drop_database_cluster(pg_server, cluster)
