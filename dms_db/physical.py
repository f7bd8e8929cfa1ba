"""Physical layout of catalog tables on the workers: names, columns, DDL.

Every physical name (overlap tables, chunk partitions, indexes) comes from one
function here, never spelled by hand elsewhere.  Catalog tables are derived
from their Felis definition plus dms-db's system columns:

* ``chunk_id``       (partitioned tables) the chunk of the row's director position
* ``healpix_index``  (partitioned tables) order-29 nested HEALPix index of the row's own
  position (a child without one takes its director's)
* ``dms_load_id``    the load that wrote the row (added by migration 0002)

A director or child table is a PostgreSQL table partitioned by LIST
(``chunk_id``) with one partition per chunk placed on the worker; a director
also has an ``<name>__overlap`` table, partitioned the same way, holding the
rows near each chunk's edge.  Indexes declared on the parent reach every
partition, including those created later.

A bulk load fills the partitions of new chunks before they join their
parent (:func:`stage_chunk_partitions`, :func:`attach_staged_partition`):
each index is then built once from the filled table instead of being updated
row by row, and ATTACH PARTITION adopts them.
"""

from __future__ import annotations

import hashlib
import logging
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

log = logging.getLogger(__name__)

CHUNK_COLUMN = "chunk_id"
HEALPIX_COLUMN = "healpix_index"
LOAD_ID_COLUMN = "dms_load_id"
MAX_IDENTIFIER_BYTES = 63
POSITION_INDEX_PURPOSE = "spoint"
"""``index_name`` purpose of the pgSphere GiST index on a table's position."""
HEALPIX_LOOKUP_KINDS = frozenset({TableKind.CHILD})
"""Kinds whose positions are found through ``healpix_index`` ranges instead of a GiST index.

Child tables (DiaSource, Source, ForcedSource) hold most of a survey's rows,
and a pgSphere GiST costs more to build than the COPY that fills the table
(about 3 us per row).  Their ``healpix_index`` is the order-29 index of the
row's own position, and the coordinator ANDs order-29 ranges covering the
query's region to the worker query, which the ``healpix_index`` B-tree
answers (Rubin's APDB finds DiaSources the same way, by pixel ranges).
Directors keep the GiST index, which near-neighbour joins need.
"""
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
        # First, not last: every worker statement filters on the chunk (and child look-ups on the
        # HEALPix index), and PostgreSQL decodes a row's columns up to the last one a filter reads;
        # behind 36 catalog columns that decoding cost full-table aggregates a third of their time.
        columns = [
            Column(CHUNK_COLUMN, BigInteger, nullable=False),
            Column(HEALPIX_COLUMN, BigInteger, nullable=False),
            *columns,
        ]
        kwargs["postgresql_partition_by"] = f"LIST ({CHUNK_COLUMN})"
    elif ctable.primary_key:
        columns.append(PrimaryKeyConstraint(*ctable.primary_key, name=index_name(ctable.name, "pkey")))
    columns.append(Column(LOAD_ID_COLUMN, BigInteger, nullable=True))
    name = overlap_table_name(ctable.name) if overlap else ctable.name
    return Table(name, metadata, *columns, schema=catalog.name, **kwargs)


def worker_indexes(ctable: CatalogTable, table: Table) -> list[Index]:
    """Indexes of a worker table: HEALPix B-tree, keys, and pgSphere GiST except on child tables."""
    indexes = []
    name = table.name
    if ctable.is_partitioned:
        indexes.append(Index(index_name(name, "healpix"), table.c[HEALPIX_COLUMN]))
        if ctable.primary_key:
            key = [table.c[c] for c in ctable.primary_key]
            indexes.append(Index(index_name(name, "key"), *key, table.c[CHUNK_COLUMN], unique=True))
        if ctable.kind is TableKind.CHILD and ctable.director_key:
            indexes.append(Index(index_name(name, "director"), table.c[ctable.director_key]))
    if ctable.ra_column and ctable.dec_column and not (ctable.is_partitioned and ctable.kind in HEALPIX_LOOKUP_KINDS):
        indexes.append(
            Index(
                index_name(name, POSITION_INDEX_PURPOSE),
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


def staged_check_name(table_name: str, chunk_id: int, overlap: bool = False) -> str:
    """Name of the CHECK (chunk_id = N) a staged chunk partition carries until it is attached."""
    return index_name(chunk_partition_name(table_name, chunk_id, overlap), "chunk")


def chunk_partition_indexes(
    catalog: CatalogSchema, ctable: CatalogTable, chunk_id: int, overlap: bool = False
) -> list[tuple[str, str]]:
    """(parent index name, CREATE INDEX on the chunk partition) of every index of the parent.

    The partition's indexes are :func:`worker_indexes` of the partition itself,
    so each has the definition of its parent's index, the condition for ATTACH
    PARTITION to adopt it rather than build another.
    """
    parent = worker_table(catalog, ctable, MetaData(), overlap=overlap)
    partition = parent.to_metadata(MetaData(), name=chunk_partition_name(ctable.name, chunk_id, overlap))
    pairs = zip(worker_indexes(ctable, parent), worker_indexes(ctable, partition), strict=True)
    return [(str(on_parent.name), str(CreateIndex(own).compile(dialect=_DIALECT))) for on_parent, own in pairs]


def stage_chunk_partitions(
    conn: psycopg.Connection, schema_name: str, ctable: CatalogTable, chunk_ids: Iterable[int]
) -> list[tuple[int, bool]]:
    """Create, as plain tables not yet attached, the partitions of chunks new on this worker.

    Must run inside the caller's transaction, which later calls
    :func:`attach_staged_partition` for each returned (chunk, is_overlap).  A
    staged partition has its parent's columns and a CHECK (chunk_id = N), and
    no index: rows are copied in without index maintenance.  Partitions that
    exist are left alone.  Each partition is claimed in
    ``dms_worker.chunk_partition`` before it is created, so a concurrent load
    creating the same one waits for this one's outcome and then uses it.
    """
    wanted = sorted({int(c) for c in chunk_ids})
    existing = set(
        conn.execute(
            "SELECT chunk_id, is_overlap FROM dms_worker.chunk_partition WHERE schema_name = %s AND table_name = %s "
            "AND chunk_id = ANY(%s)",
            (schema_name, ctable.name, wanted),
        ).fetchall()
    )
    staged = []
    for chunk_id in wanted:
        for parent, is_overlap in partitioned_table_names(ctable):
            if (chunk_id, is_overlap) in existing:
                continue
            claimed = conn.execute(
                "INSERT INTO dms_worker.chunk_partition (schema_name, table_name, chunk_id, is_overlap) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING chunk_id",
                (schema_name, ctable.name, chunk_id, is_overlap),
            ).fetchone()
            if claimed is None:
                continue
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                    "INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION, "
                    "CONSTRAINT {check} CHECK ({chunk} = {value}::bigint))"
                ).format(
                    partition=sql.Identifier(schema_name, chunk_partition_name(ctable.name, chunk_id, is_overlap)),
                    parent=sql.Identifier(schema_name, parent),
                    check=sql.Identifier(staged_check_name(ctable.name, chunk_id, is_overlap)),
                    chunk=sql.Identifier(CHUNK_COLUMN),
                    value=sql.Literal(chunk_id),
                )
            )
            staged.append((chunk_id, is_overlap))
    return staged


def attach_staged_partition(
    conn: psycopg.Connection, catalog: CatalogSchema, ctable: CatalogTable, chunk_id: int, overlap: bool
) -> None:
    """Index a filled staged partition and attach it to its parent, in the caller's transaction.

    The indexes are built first, each in one pass over the rows; ATTACH
    PARTITION then adopts them (building any the parent has and this code does
    not know), and the CHECK constraint spares it the scan that proves every
    row belongs to the chunk.  The CHECK is dropped afterwards: the partition
    bound says the same, so the result is what CREATE TABLE ... PARTITION OF
    and a COPY would have left.
    """
    schema_name = catalog.name
    parent = overlap_table_name(ctable.name) if overlap else ctable.name
    partition = sql.Identifier(schema_name, chunk_partition_name(ctable.name, chunk_id, overlap))
    on_parent = _index_names(conn, schema_name, parent)
    for parent_index, statement in chunk_partition_indexes(catalog, ctable, chunk_id, overlap):
        if parent_index in on_parent:
            conn.execute(statement)
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
            sql.Identifier(schema_name, parent), partition, sql.Literal(chunk_id)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            partition, sql.Identifier(staged_check_name(ctable.name, chunk_id, overlap))
        )
    )
    _drop_unadopted_indexes(conn, schema_name, chunk_partition_name(ctable.name, chunk_id, overlap))


def _index_names(conn: psycopg.Connection, schema_name: str, table_name: str) -> set[str]:
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema_name, table_name)
    )
    return {name for (name,) in rows}


def _drop_unadopted_indexes(conn: psycopg.Connection, schema_name: str, partition_name: str) -> None:
    """Drop indexes of an attached partition that belong to no index of the parent.

    There are none unless a parent index was changed by hand to differ from
    :func:`worker_indexes`; ATTACH then built a matching one, and the
    partition keeps exactly its parent's set.
    """
    rows = conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)",
        (sql.Identifier(schema_name, partition_name).as_string(conn),),
    ).fetchall()
    for (name,) in rows:
        log.warning("dropping index %s.%s: it matches no index of the parent table", schema_name, name)
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema_name, name)))
