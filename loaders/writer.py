"""Write partitioned rows to the workers with binary COPY, one partition at a time.

Rows of one chunk are sorted by HEALPix index and copied straight into that
chunk's partition (not through the parent, which would route row by row), on
every replica of the chunk.  The COPY payload is encoded by numpy
(:mod:`loaders.copy_binary`), so no Python code runs per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from dms_db.physical import CHUNK_COLUMN, HEALPIX_COLUMN, chunk_partition_name
from loaders.copy_binary import CopyColumn, copy_binary_into


def copy_type_of(arrow_type: pa.DataType) -> str:
    """The PostgreSQL type whose binary form an Arrow column is sent as.

    The conformed batches carry exactly the Felis types, so the binary layout
    matches the target column (text is also the wire form of char/varchar).
    """
    if pa.types.is_int64(arrow_type):
        return "bigint"
    if pa.types.is_int32(arrow_type):
        return "integer"
    if pa.types.is_int16(arrow_type) or pa.types.is_int8(arrow_type):
        return "smallint"
    if pa.types.is_float64(arrow_type):
        return "double precision"
    if pa.types.is_float32(arrow_type):
        return "real"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    return "text"


def copy_table(
    conn: psycopg.Connection, target: sql.Composable, table: pa.Table, pg_types: dict[str, str] | None = None
) -> int:
    """COPY an Arrow table into ``target`` (columns by name); returns the row count.

    ``pg_types`` gives the target's actual column types where known (binary
    COPY must send exactly the stored type); other columns follow their Arrow type.
    """
    if table.num_rows == 0:
        return 0
    known = pg_types or {}
    columns = [CopyColumn(f.name, known.get(f.name) or copy_type_of(f.type)) for f in table.schema]
    return copy_binary_into(conn, target, columns, [table])


def copy_chunks(
    conn: psycopg.Connection,
    schema_name: str,
    table_name: str,
    rows: pa.Table,
    chunks: Sequence[int],
    overlap: bool,
    pg_types: dict[str, str] | None = None,
) -> int:
    """COPY the rows of ``chunks`` into their partitions on one worker, sorted by HEALPix index."""
    if rows.num_rows == 0:
        return 0
    chunk_values = rows[CHUNK_COLUMN].to_numpy()
    written = 0
    for chunk_id in chunks:
        selected = rows.filter(pa.array(chunk_values == chunk_id))
        if selected.num_rows == 0:
            continue
        ordered = selected.take(pc.sort_indices(selected, sort_keys=[(HEALPIX_COLUMN, "ascending")]))
        partition = sql.Identifier(schema_name, chunk_partition_name(table_name, int(chunk_id), overlap))
        written += copy_table(conn, partition, ordered, pg_types)
    return written


def stored_column_types(conn: psycopg.Connection, schema_name: str, table_name: str) -> dict[str, str]:
    """Column name -> PostgreSQL type (without modifiers) of a table as it is stored."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (sql.Identifier(schema_name, table_name).as_string(conn),),
    ).fetchall()
    aliases = {"character": "char", "character varying": "varchar", "timestamp without time zone": "timestamp"}
    return {name: aliases.get(kind, kind) for name, kind in rows}


def rows_per_chunk(rows: pa.Table) -> dict[int, int]:
    """How many rows each chunk receives."""
    chunk_ids, counts = np.unique(rows[CHUNK_COLUMN].to_numpy(), return_counts=True)
    return {int(c): int(n) for c, n in zip(chunk_ids, counts, strict=True)}
