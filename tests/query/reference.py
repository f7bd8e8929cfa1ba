"""The unsharded reference database of the correctness suite, and the catalog both sides translate against.

The reference is one plain PostgreSQL database holding every row of the
:class:`~tests.query.dataset.QueryDataset` in ordinary (unpartitioned) tables
with **the column types the workers use** (:func:`dms_db.physical.column_type`:
Felis ``float`` is ``real``), so that a value computed from a stored column is
the same on both sides.  ``tests/loaders/reference.py`` cannot be reused as is
for this: it declares Felis' default types (``float`` as double precision).

Its ``TAP_SCHEMA`` holds the rows a coordinator should hold: those a deploy
writes (:func:`dms_db.tap_schema.tap_schema_rows` of each catalog) and the
rows describing TAP_SCHEMA itself (:func:`dms_db.tap_schema.tap_schema_self_rows`,
which TAP 1.1 requires and without which TAP_SCHEMA cannot be queried in
ADQL), so that queries on TAP_SCHEMA alone compare too.  It has the indexes a single-node server
would have (keys, director keys, the pgSphere position GiST the translator's
expressions use), so that near-neighbour self-joins of Hipparcos finish.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateSchema, CreateTable
from sqlalchemy.types import REAL

from adql import TableCatalog, TableKindInfo
from dms_db.catalog_schema import CatalogSchema, CatalogTable, TableKind
from dms_db.physical import column_type
from dms_db.tap_schema import TapSchemaRows, define_tap_schema_tables, tap_schema_rows, tap_schema_self_rows
from sharding.coordinator.cluster_catalog import read_cluster_catalog
from tests.query.dataset import QueryDataset

_DIALECT = postgresql.dialect()


def coordinator_catalog(dsn: str) -> TableCatalog:
    """The ADQL catalog of a cluster, read as the query engine reads it."""
    with psycopg.connect(dsn) as conn:
        return read_cluster_catalog(conn).tables


def plain_table(catalog: CatalogSchema, ctable: CatalogTable, metadata: MetaData) -> Table:
    """The table as one unsharded server would hold it: worker column types, primary key, no system columns."""
    columns: list[object] = [
        Column(col.name, column_type(col), nullable=col.nullable is not False) for col in ctable.felis.columns
    ]
    if ctable.primary_key:
        columns.append(PrimaryKeyConstraint(*ctable.primary_key, name=f"{ctable.name}_pkey"))
    return Table(ctable.name, metadata, *columns, schema=catalog.name)


def index_statements(schema_name: str, ctable: CatalogTable) -> list[sql.Composable]:
    """Secondary indexes: the director key of a child and the pgSphere position of a table with one."""
    table = sql.Identifier(schema_name, ctable.name)
    statements: list[sql.Composable] = []
    if ctable.kind is TableKind.CHILD and ctable.director_key:
        statements.append(sql.SQL("CREATE INDEX ON {} ({})").format(table, sql.Identifier(ctable.director_key)))
    if ctable.ra_column and ctable.dec_column:
        statements.append(
            sql.SQL("CREATE INDEX ON {} USING gist (spoint(radians({}), radians({})))").format(
                table, sql.Identifier(ctable.ra_column), sql.Identifier(ctable.dec_column)
            )
        )
    return statements


def _stored_frame(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The frame's columns of ``table`` as the loader stores them: reals as float32, times to the microsecond."""
    names = [c.name for c in table.columns if c.name in frame.columns]
    out = frame[names].copy()
    for name in names:
        column = out[name]
        if isinstance(table.c[name].type, REAL) and column.dtype != np.float32:
            out[name] = column.astype(np.float32)
        elif pd.api.types.is_datetime64_any_dtype(column):
            out[name] = column.dt.floor("us")
    return out


def copy_frame(conn: psycopg.Connection, table: Table, frame: pd.DataFrame) -> None:
    """COPY a frame into a reference table as CSV.

    Floats are written in their shortest round-trip form (float32 ones as
    float32), so PostgreSQL reads back exactly the loader's values; a missing
    value (NaN, NA, None) is an empty unquoted field, which is NULL.
    """
    stored = _stored_frame(frame, table)
    buffer = io.StringIO()
    stored.to_csv(buffer, index=False, header=False, na_rep="", date_format="%Y-%m-%d %H:%M:%S.%f")
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(table.schema, table.name), sql.SQL(", ").join(sql.Identifier(n) for n in stored.columns)
    )
    with conn.cursor().copy(statement) as copy:
        copy.write(buffer.getvalue())


def _create_tap_schema(conn: psycopg.Connection, rows: TapSchemaRows) -> None:
    tap = define_tap_schema_tables(MetaData())
    conn.execute(str(CreateSchema("TAP_SCHEMA", if_not_exists=True).compile(dialect=_DIALECT)))
    for table, values in zip(
        tap.all(), (rows.schemas, rows.tables, rows.columns, rows.keys, rows.key_columns), strict=True
    ):
        conn.execute(str(CreateTable(table).compile(dialect=_DIALECT)))
        if not values:
            continue
        names = list(values[0])
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table.schema, table.name),
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
            sql.SQL(", ").join(sql.Placeholder() for _ in names),
        )
        with conn.cursor() as cur:
            cur.executemany(statement, [tuple(row[n] for n in names) for row in values])


def build_reference(dsn: str, dataset: QueryDataset) -> None:
    """Create and fill the unsharded reference database (a fresh database with pgSphere)."""
    metadata = MetaData()
    tap_rows = tap_schema_self_rows()
    with psycopg.connect(dsn) as conn:
        for data in dataset.catalogs:
            catalog = data.schema
            tap_rows = tap_rows + tap_schema_rows(catalog)
            conn.execute(str(CreateSchema(catalog.name, if_not_exists=True).compile(dialect=_DIALECT)))
            for ctable in catalog.tables:
                table = plain_table(catalog, ctable, metadata)
                conn.execute(str(CreateTable(table).compile(dialect=_DIALECT)))
                frame = data.tables.get(ctable.name)
                if frame is not None and not frame.empty:
                    copy_frame(conn, table, frame)
                for statement in index_statements(catalog.name, ctable):
                    conn.execute(statement)
        _create_tap_schema(conn, tap_rows)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


def dataset_kinds(dataset: QueryDataset) -> dict[str, TableKindInfo]:
    """Partitioning of every table of ``dataset``, from its Felis schemas (no coordinator needed).

    The same values a deploy records in ``dms.catalog_table`` (see ``read_table_kinds``);
    used to translate corpus queries for the reference alone.
    """
    kinds = {}
    for data in dataset.catalogs:
        for ctable in data.schema.tables:
            director = f"{data.name}.{ctable.director_table}" if ctable.kind is TableKind.CHILD else None
            kinds[f"{data.name}.{ctable.name}"] = TableKindInfo(
                ctable.kind.value, ctable.director_key, director, ctable.ra_column, ctable.dec_column
            )
    return kinds
