"""Physical layout of catalog tables on the workers: names, columns, DDL.

Every physical name (overlap tables, chunk partitions, indexes) comes from one
function here, never spelled by hand elsewhere.  Catalog tables are derived
from their Felis definition plus dms-db's system columns:

* ``chunk_id``       (partitioned tables) the chunk of the row's director position
* ``healpix_index``  (partitioned tables) order-29 nested HEALPix index of that position
* ``dms_load_id``    the load that wrote the row (added by migration 0002)

A director or child table is a PostgreSQL table partitioned by LIST
(``chunk_id``) with one partition per chunk placed on the worker; a director
also has an ``<name>__overlap`` table, partitioned the same way, holding the
rows near each chunk's edge.  Indexes declared on the parent reach every
partition, including those created later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import psycopg
from felis.datamodel import Column as FelisColumn
from felis.metadata import get_datatype_with_variants
from psycopg import sql
from sqlalchemy import REAL, BigInteger, Column, Index, MetaData, PrimaryKeyConstraint, Table, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable
from sqlalchemy.types import TypeEngine

from dms_db.catalog_schema import CatalogSchema, CatalogTable, TableKind

CHUNK_COLUMN = "chunk_id"
HEALPIX_COLUMN = "healpix_index"
LOAD_ID_COLUMN = "dms_load_id"
MAX_IDENTIFIER_BYTES = 63
_DIALECT = postgresql.dialect()


def _bounded(name: str) -> str:
    """Keep a generated identifier within PostgreSQL's 63 bytes, stably."""
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return name.encode()[: MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore") + "_" + digest


def overlap_table_name(table_name: str) -> str:
    """Name of a director table's overlap table."""
    return _bounded(f"{table_name}__overlap")


def chunk_partition_name(table_name: str, chunk_id: int, overlap: bool = False) -> str:
    """Name of the partition of one chunk (of the main or the overlap table)."""
    marker = "o" if overlap else "c"
    return _bounded(f"{table_name}__{marker}{int(chunk_id)}")


def index_name(table_name: str, purpose: str) -> str:
    """Name of an index dms-db creates on a catalog table."""
    return _bounded(f"{table_name}__{purpose}")


def position_expression(table: Table, ra_column: str, dec_column: str):
    """The pgSphere point of a row: ``spoint(radians(ra), radians(dec))``.

    The ADQL translator emits exactly this expression, so that the GiST index
    built on it serves CONTAINS and DISTANCE predicates.
    """
    return func.spoint(func.radians(table.c[ra_column]), func.radians(table.c[dec_column]))


def column_type(column: FelisColumn) -> TypeEngine:
    """The PostgreSQL type of a Felis column.

    Felis' ``float`` is 32-bit, but its SQLAlchemy type compiles to ``FLOAT``,
    which PostgreSQL reads as ``double precision``; dms-db stores it as ``real``
    so that measurements take the space the schema intends.
    """
    if column.datatype.value == "float":
        return REAL()
    return get_datatype_with_variants(column)


def worker_table(catalog: CatalogSchema, ctable: CatalogTable, metadata: MetaData, overlap: bool = False) -> Table:
    """SQLAlchemy definition of a catalog table as stored on a worker."""
    columns = [Column(col.name, column_type(col), nullable=col.nullable is not False) for col in ctable.felis.columns]
    kwargs: dict[str, object] = {}
    if ctable.is_partitioned:
        columns += [
            Column(CHUNK_COLUMN, BigInteger, nullable=False),
            Column(HEALPIX_COLUMN, BigInteger, nullable=False),
        ]
        kwargs["postgresql_partition_by"] = f"LIST ({CHUNK_COLUMN})"
    elif ctable.primary_key:
        columns.append(PrimaryKeyConstraint(*ctable.primary_key, name=index_name(ctable.name, "pkey")))
    columns.append(Column(LOAD_ID_COLUMN, BigInteger, nullable=True))
    name = overlap_table_name(ctable.name) if overlap else ctable.name
    return Table(name, metadata, *columns, schema=catalog.name, **kwargs)


def worker_indexes(ctable: CatalogTable, table: Table) -> list[Index]:
    """Indexes of a worker table: HEALPix B-tree, pgSphere GiST, keys."""
    indexes = []
    name = table.name
    if ctable.is_partitioned:
        indexes.append(Index(index_name(name, "healpix"), table.c[HEALPIX_COLUMN]))
        if ctable.primary_key:
            key = [table.c[c] for c in ctable.primary_key]
            indexes.append(Index(index_name(name, "key"), *key, table.c[CHUNK_COLUMN], unique=True))
        if ctable.kind is TableKind.CHILD and ctable.director_key:
            indexes.append(Index(index_name(name, "director"), table.c[ctable.director_key]))
    if ctable.ra_column and ctable.dec_column:
        indexes.append(
            Index(
                index_name(name, "spoint"),
                position_expression(table, ctable.ra_column, ctable.dec_column),
                postgresql_using="gist",
            )
        )
    return indexes


def catalog_ddl(catalog: CatalogSchema) -> list[str]:
    """DDL creating a catalog's schema and parent tables on a worker, in order."""
    metadata = MetaData()
    statements = [str(CreateSchema(catalog.name, if_not_exists=True).compile(dialect=_DIALECT))]
    for ctable in catalog.tables:
        variants = [False, True] if ctable.kind is TableKind.DIRECTOR else [False]
        for overlap in variants:
            table = worker_table(catalog, ctable, metadata, overlap=overlap)
            statements.append(str(CreateTable(table).compile(dialect=_DIALECT)))
            statements += [str(CreateIndex(ix).compile(dialect=_DIALECT)) for ix in worker_indexes(ctable, table)]
    return statements


def partitioned_table_names(ctable: CatalogTable) -> list[tuple[str, bool]]:
    """(physical table name, is_overlap) of a partitioned catalog table."""
    if not ctable.is_partitioned:
        return []
    names = [(ctable.name, False)]
    if ctable.kind is TableKind.DIRECTOR:
        names.append((overlap_table_name(ctable.name), True))
    return names


def ensure_chunk_partitions(
    conn: psycopg.Connection,
    schema_name: str,
    ctable: CatalogTable,
    chunk_ids: Iterable[int],
    per_transaction: int = 50,
) -> list[int]:
    """Create missing chunk partitions (and overlap partitions) on one worker.

    Outside a transaction, commits every ``per_transaction`` chunks (each new
    partition takes lock-table slots until commit); inside one, the groups are
    savepoints and everything commits or rolls back with the caller.  Returns
    the chunks that were new.
    """
    wanted = sorted({int(c) for c in chunk_ids})
    with conn.transaction():
        existing = {
            int(c)
            for (c,) in conn.execute(
                "SELECT chunk_id FROM dms_worker.chunk_partition WHERE schema_name = %s AND table_name = %s "
                "AND NOT is_overlap AND chunk_id = ANY(%s)",
                (schema_name, ctable.name, wanted),
            )
        }
    created = [c for c in wanted if c not in existing]
    for start in range(0, len(created), per_transaction):
        with conn.transaction():
            for chunk_id in created[start : start + per_transaction]:
                _create_chunk_partition(conn, schema_name, ctable, chunk_id)
    return created


def _create_chunk_partition(conn: psycopg.Connection, schema_name: str, ctable: CatalogTable, chunk_id: int) -> None:
    for parent, is_overlap in partitioned_table_names(ctable):
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES IN ({})").format(
                sql.Identifier(schema_name, chunk_partition_name(ctable.name, chunk_id, is_overlap)),
                sql.Identifier(schema_name, parent),
                sql.Literal(chunk_id),
            )
        )
        conn.execute(
            "INSERT INTO dms_worker.chunk_partition (schema_name, table_name, chunk_id, is_overlap) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (schema_name, ctable.name, chunk_id, is_overlap),
        )
