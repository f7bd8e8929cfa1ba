"""Deploy a catalog schema (Felis YAML) onto the cluster.

One deploy creates, atomically on every node: the catalog's parent tables on
each worker (partitioned by chunk for directors and children, plain for
replicated tables), the coordinator's registry rows (catalog, tables, kinds)
and the TAP_SCHEMA rows derived from the same YAML.  Deploying the same YAML
under the same name again is a no-op; a different YAML under a taken name is
refused, because a deployed catalog changes only through migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Executable, Table, bindparam, insert
from sqlalchemy.dialects import postgresql

from dms_db import migration_support
from dms_db.catalog_schema import CatalogSchema
from dms_db.distributed_transaction import distributed_transaction
from dms_db.errors import AlreadyExistsError
from dms_db.metadata import catalog as catalog_registry
from dms_db.metadata import catalog_table as table_registry
from dms_db.metadata import tap_schema_tables
from dms_db.physical import catalog_ddl
from dms_db.tap_schema import tap_schema_rows
from dms_db.topology import Topology

_DIALECT = postgresql.dialect(paramstyle="pyformat")


@dataclass(frozen=True)
class DeployReport:
    """What a deploy did."""

    schema_name: str
    tables: tuple[tuple[str, str], ...]
    created: bool
    workers: int


def deploy_catalog(topology: Topology, catalog: CatalogSchema, chunk_order: int, overlap_arcsec: float) -> DeployReport:
    """Create ``catalog`` on every node, or confirm it is already there unchanged."""
    migration_support.ensure_schema_current(topology)
    tables = tuple((t.name, t.kind.value) for t in catalog.tables)
    with psycopg.connect(topology.coordinator.dsn) as conn:
        row = conn.execute(
            "SELECT source_yaml, chunk_order FROM dms.catalog WHERE schema_name = %s", (catalog.name,)
        ).fetchone()
    if row is not None:
        if row[0] == catalog.source_text:
            return DeployReport(catalog.name, tables, created=False, workers=len(topology.workers))
        raise AlreadyExistsError(
            f"a different schema is already deployed as {catalog.name!r}",
            hint="deploy it under another name with --as NAME, or evolve the deployed one with a migration",
        )
    with distributed_transaction(topology, "deploy") as txn:
        for conn in txn.workers.values():
            create_catalog_on_worker(conn, catalog, chunk_order)
        _register_on_coordinator(txn.coordinator, catalog, chunk_order, overlap_arcsec)
    return DeployReport(catalog.name, tables, created=True, workers=len(topology.workers))


def create_catalog_on_worker(conn: psycopg.Connection, catalog: CatalogSchema, chunk_order: int) -> None:
    """Create a catalog's parent tables on one worker and record them, in the caller's transaction."""
    for statement in catalog_ddl(catalog):
        conn.execute(statement)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dms_worker.deployed_table (schema_name, table_name, kind, chunk_order) "
            "VALUES (%s, %s, %s, %s)",
            [(catalog.name, t.name, t.kind.value, chunk_order if t.is_partitioned else None) for t in catalog.tables],
        )


def _register_on_coordinator(
    conn: psycopg.Connection, catalog: CatalogSchema, chunk_order: int, overlap_arcsec: float
) -> None:
    _execute(
        conn,
        insert(catalog_registry).values(
            schema_name=catalog.name,
            felis_name=catalog.felis_name,
            version=catalog.version,
            description=catalog.description,
            chunk_order=chunk_order,
            overlap_arcsec=overlap_arcsec,
            source_yaml=catalog.source_text,
        ),
    )
    _insert_many(
        conn,
        table_registry,
        [
            {
                "schema_name": catalog.name,
                "table_name": t.name,
                "kind": t.kind.value,
                "director_table": t.director_table,
                "director_key": t.director_key,
                "ra_column": t.ra_column,
                "dec_column": t.dec_column,
            }
            for t in catalog.tables
        ],
    )
    rows = tap_schema_rows(catalog)
    for table, values in (
        (tap_schema_tables.schemas, rows.schemas),
        (tap_schema_tables.tables, rows.tables),
        (tap_schema_tables.columns, rows.columns),
        (tap_schema_tables.keys, rows.keys),
        (tap_schema_tables.key_columns, rows.key_columns),
    ):
        _insert_many(conn, table, list(values))


def _execute(conn: psycopg.Connection, statement: Executable) -> None:
    """Run a SQLAlchemy Core statement on a psycopg connection, values bound."""
    compiled = statement.compile(dialect=_DIALECT)
    conn.execute(str(compiled), compiled.params)


def _insert_many(conn: psycopg.Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert dict rows (all with the same keys) into a SQLAlchemy table."""
    if not rows:
        return
    statement = insert(table).values({key: bindparam(key) for key in rows[0]})
    with conn.cursor() as cur:
        cur.executemany(str(statement.compile(dialect=_DIALECT)), rows)
