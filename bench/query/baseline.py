"""The unsharded baseline: one plain PostgreSQL server holding the same rows as the cluster.

The server is a :class:`~dms_db.postgres_server.PostgresServer` with the workers' settings
(``shared_buffers``, fsync off), in the benchmark's temporary directory, so that the two sides
differ only in sharding. Its ``apdb`` tables are the unsharded reference tables of the
correctness suite (``tests.query.reference``: worker column types, primary key, a child's
director-key B-tree, the pgSphere GiST on ``spoint(radians(ra), radians(dec))``), filled by
binary COPY of the very Arrow tables given to the loader (``loaders.copy_binary``), the
secondary indexes built after the COPY.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateSchema, CreateTable

from dms_db.catalog_schema import CatalogSchema
from dms_db.local_cluster import LocalCluster
from dms_db.postgres_server import PostgresServer, ServerSettings
from loaders.copy_binary import COPY_HEADER, COPY_TRAILER, CopyColumn, encode_copy_binary
from loaders.writer import copy_type_of

# Private helpers of the correctness suite's reference builder, reused so that the baseline
# has exactly the reference's tables and indexes (see the README: they should become public).
from tests.query.reference import index_statements, plain_table

COPY_PIECE_ROWS = 100_000  # encode_copy_binary is fastest on batches of about 10^5 rows
DATABASE = "dms"


def baseline_server(cluster: LocalCluster, home: Path, port: int) -> PostgresServer:
    """A plain server configured like the cluster's workers, under ``home``."""
    local = cluster.local
    settings = ServerSettings(port=port, host=local.host, shared_buffers_mb=local.shared_buffers_mb, fsync=local.fsync)
    return PostgresServer(home, settings, cluster.account, cluster.passfile, local.bin_dir)


def start_baseline(server: PostgresServer) -> str:
    """Initialise and start the server; return the DSN of a database with pgSphere."""
    server.init()
    server.start()
    return server.ensure_database(DATABASE)


def copy_arrow(conn: psycopg.Connection, schema_name: str, table_name: str, table: pa.Table) -> None:
    """Binary COPY of every row of ``table`` (Arrow types as the worker stores them) in one stream."""
    columns = [CopyColumn(field.name, copy_type_of(field.type)) for field in table.schema]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema_name, table_name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    with conn.cursor() as cursor, cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        copy.write(COPY_HEADER)
        for start in range(0, table.num_rows, COPY_PIECE_ROWS):
            piece = table.slice(start, COPY_PIECE_ROWS)
            copy.write(encode_copy_binary(piece, columns, header=False, trailer=False))
        copy.write(COPY_TRAILER)


def fill_baseline(dsn: str, catalog: CatalogSchema, tables: dict[str, pa.Table]) -> None:
    """Create the catalog's tables that have rows, COPY the rows, build the indexes, VACUUM ANALYZE."""
    dialect = postgresql.dialect()
    metadata = MetaData()
    with psycopg.connect(dsn) as conn:
        conn.execute(str(CreateSchema(catalog.name, if_not_exists=True).compile(dialect=dialect)))
        for name, rows in tables.items():
            ctable = catalog.table(name)
            conn.execute(str(CreateTable(plain_table(catalog, ctable, metadata)).compile(dialect=dialect)))
            copy_arrow(conn, catalog.name, name, rows)
            for statement in index_statements(catalog.name, ctable):
                conn.execute(statement)
            conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def baseline_bytes(dsn: str, schema_name: str, table_name: str) -> int:
    """On-disk size of a baseline table with its indexes."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size(format('%%I.%%I', %s::text, %s::text)::regclass)", (schema_name, table_name)
        ).fetchone()
    return int(row[0]) if row else 0
