"""Fixtures of the ADQL tests: the reference database, built once per session."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from adql.catalog import TableCatalog
from tests.adql.reference_data import build_reference_database, reference_catalog, table_kinds


@pytest.fixture(scope="session")
def adql_reference_dsn(pg_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """DSN of a database holding the reference catalog (tables, data, TAP_SCHEMA)."""
    dsn = pg_server.create_database()
    build_reference_database(dsn)
    yield dsn
    pg_server.drop_database(dsn)


@pytest.fixture(scope="session")
def adql_connection(adql_reference_dsn: str) -> Iterator[psycopg.Connection]:
    """A read-only autocommit connection to the reference database."""
    with psycopg.connect(adql_reference_dsn, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET statement_timeout = '20s'")
        yield conn


@pytest.fixture(scope="session")
def db_catalog(adql_connection: psycopg.Connection) -> TableCatalog:
    """The reference catalog as read from the database's TAP_SCHEMA."""
    return TableCatalog.from_tap_schema(adql_connection, table_kinds())


@pytest.fixture(scope="session")
def catalog() -> TableCatalog:
    """The reference catalog without a database."""
    return reference_catalog()
