"""Bring a worker that joins the cluster up to its catalogs before it is registered.

Once registered, a worker receives new chunks from placement, and loads then
create partitions under the catalog's parent tables there; replicated tables
must hold the same rows on every worker.  So before ``dms-db cluster
add-worker`` registers a new worker, every deployed catalog is created on it
and the rows of every replicated table are copied to it from a current worker
(binary COPY, streamed), in one transaction on the new worker: an interrupted
catch-up leaves nothing behind, and running it again finishes the job
(catalogs a committed earlier run created are skipped).

No load or deploy runs meanwhile: ``add-worker`` holds the coordinator's
worker-set lock (:data:`dms_db.distributed_transaction.WORKER_SET_LOCK`)
exclusively from before the catch-up until the registration, and every
distributed transaction holds it shared and checks that it reaches every
registered worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from dms_db.catalog_schema import CatalogSchema, TableKind, load_catalog_schema
from dms_db.deploy import create_catalog_on_worker
from dms_db.distributed_transaction import GID_PREFIX
from dms_db.errors import ClusterError
from dms_db.topology import NodeSpec, Topology


@dataclass(frozen=True)
class CatchUpReport:
    """What a catch-up did."""

    catalogs: tuple[str, ...]
    replicated_rows: int


def deployed_catalogs(coordinator: NodeSpec) -> list[tuple[CatalogSchema, int]]:
    """Every deployed catalog with its chunk order, from the Felis YAML kept on the coordinator."""
    with psycopg.connect(coordinator.dsn) as conn:
        rows = conn.execute("SELECT schema_name, source_yaml, chunk_order FROM dms.catalog ORDER BY 1").fetchall()
    return [(load_catalog_schema(source, name=name), int(order)) for name, source, order in rows]


def catch_up_worker(topology: Topology, worker: NodeSpec) -> CatchUpReport:
    """Create the deployed catalogs on ``worker`` and copy replicated rows from a worker of ``topology``."""
    catalogs = deployed_catalogs(topology.coordinator)
    if not catalogs:
        return CatchUpReport((), 0)
    created: list[str] = []
    copied = 0
    source = next((w for w in topology.workers if w.name != worker.name), None)
    with psycopg.connect(worker.dsn) as target, target.transaction():
        present = {name for (name,) in target.execute("SELECT DISTINCT schema_name FROM dms_worker.deployed_table")}
        missing = [(catalog, order) for catalog, order in catalogs if catalog.name not in present]
        for catalog, order in missing:
            create_catalog_on_worker(target, catalog, order)
            created.append(catalog.name)
        replicated = [(c.name, t.name) for c, _ in missing for t in c.tables if t.kind is TableKind.REPLICATED]
        if replicated and source is not None:
            with psycopg.connect(source.dsn) as origin:
                # Every table read from one snapshot.
                origin.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                origin.read_only = True
                _refuse_if_finishing(origin, source)
                for schema_name, table_name in replicated:
                    copied += copy_rows(origin, target, schema_name, table_name)
    return CatchUpReport(tuple(created), copied)


def _refuse_if_finishing(origin: psycopg.Connection, source: NodeSpec) -> None:
    """A change decided but not yet committed on the source would be missing from the copy."""
    pending = origin.execute(
        "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE %s AND database = current_database()",
        (f"{GID_PREFIX}%",),
    ).fetchone()[0]
    if pending:
        raise ClusterError(
            f"{pending} distributed transaction(s) are still being committed on {source.name}",
            hint="run 'dms-db recover', then add-worker again",
        )


def copy_rows(origin: psycopg.Connection, target: psycopg.Connection, schema_name: str, table_name: str) -> int:
    """Stream every row of one table from ``origin`` into the same table on ``target``; returns the count."""
    columns = [
        name
        for (name,) in target.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            (sql.Identifier(schema_name, table_name).as_string(target),),
        )
    ]
    listed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    table = sql.Identifier(schema_name, table_name)
    read = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(listed, table)
    write = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, listed)
    with origin.cursor().copy(read) as rows_out, target.cursor() as cursor:
        with cursor.copy(write) as rows_in:
            for data in rows_out:
                rows_in.write(data)
        return max(cursor.rowcount, 0)
