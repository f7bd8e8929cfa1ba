"""An unsharded reference: the same rows in one plain PostgreSQL database, and readers for both sides.

The reference is filled with plain INSERTs (not the loader's COPY path), so a
comparison checks the loader against PostgreSQL itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import psycopg
from felis.metadata import get_datatype_with_variants
from psycopg import sql
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateSchema, CreateTable

from dms_db.catalog_schema import CatalogSchema, CatalogTable, TableKind
from sharding.placement import read_placement
from tests.harness import DatabaseCluster


def create_reference_schema(dsn: str, catalog: CatalogSchema) -> None:
    """Plain (unpartitioned) tables with the catalog's Felis columns."""
    metadata = MetaData()
    dialect = postgresql.dialect()
    with psycopg.connect(dsn) as conn:
        conn.execute(str(CreateSchema(catalog.name, if_not_exists=True).compile(dialect=dialect)))
        for ctable in catalog.tables:
            table = Table(
                ctable.name,
                metadata,
                *[Column(c.name, get_datatype_with_variants(c)) for c in ctable.felis.columns],
                schema=catalog.name,
            )
            conn.execute(str(CreateTable(table).compile(dialect=dialect)))


def _python_value(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None  # pandas NaN means missing, as in the loader
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.floor("us").to_pydatetime()
    return value


def insert_reference_rows(dsn: str, schema_name: str, table: CatalogTable, frame: pd.DataFrame) -> None:
    """INSERT a DataFrame's rows one by one into the reference table."""
    names = [c.name for c in table.felis.columns if c.name in frame.columns]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(schema_name, table.name),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(", ").join(sql.Placeholder() for _ in names),
    )
    rows = [tuple(_python_value(v) for v in row) for row in frame[names].itertuples(index=False, name=None)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(statement, rows)


def _select(table: CatalogTable, schema_name: str) -> sql.Composable:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.felis.columns)
    return sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(schema_name, table.name))


def _normalised(frame: pd.DataFrame, table: CatalogTable) -> pd.DataFrame:
    """Key order, and one spelling of "missing" (None), whatever dtype pandas inferred."""
    frame = frame.sort_values(list(table.primary_key)).reset_index(drop=True).astype(object)
    return frame.where(pd.notna(frame), None)


def read_reference(dsn: str, schema_name: str, table: CatalogTable) -> pd.DataFrame:
    """All rows of a reference table, in primary-key order."""
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(_select(table, schema_name))
        frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    return _normalised(frame, table)


def primary_chunks(cluster: DatabaseCluster, schema_name: str) -> dict[str, list[int]]:
    """Worker name -> the chunks of a catalog whose first replica it holds."""
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        order = conn.execute("SELECT chunk_order FROM dms.catalog WHERE schema_name = %s", (schema_name,)).fetchone()[0]
        placement = read_placement(conn, order)
    primaries: dict[str, list[int]] = {}
    for chunk_id, replicas in placement.items():
        primaries.setdefault(replicas.nodes[0], []).append(chunk_id)
    return primaries


def read_cluster(cluster: DatabaseCluster, schema_name: str, table: CatalogTable) -> pd.DataFrame:
    """All rows of a sharded table, each chunk read from its first replica, in key order.

    Replicated tables must be identical on every worker; that is asserted here.
    """
    frames = []
    primaries = primary_chunks(cluster, schema_name)
    copies = []
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            query = _select(table, schema_name)
            if table.kind is TableKind.REPLICATED:
                cur = conn.execute(query)
                copies.append(pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description]))
                continue
            query = sql.SQL("{} WHERE chunk_id = ANY(%s)").format(query)
            cur = conn.execute(query, (primaries.get(worker.name, []),))
            frames.append(pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description]))
    if copies:
        first = _normalised(copies[0], table)
        for other in copies[1:]:
            pd.testing.assert_frame_equal(first, _normalised(other, table))
        return first
    return _normalised(pd.concat(frames, ignore_index=True), table)


def count_everywhere(cluster: DatabaseCluster, schema_name: str, table_name: str) -> list[int]:
    """Rows of a table on each worker (replicas included)."""
    counts = []
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema_name, table_name))
            counts.append(conn.execute(query).fetchone()[0])
    return counts
