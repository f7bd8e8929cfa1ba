"""Write partitioned rows to the workers with COPY, one partition at a time.

Rows of one chunk are sorted by HEALPix index and copied straight into that
chunk's partition (not through the parent, which would route row by row), on
every replica of the chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from dms_db.physical import CHUNK_COLUMN, HEALPIX_COLUMN, chunk_partition_name

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def copy_table(conn: psycopg.Connection, target: sql.Composable, table: pa.Table) -> int:
    """COPY an Arrow table into ``target`` (columns by name); returns the row count.

    CSV is produced by Arrow's C++ writer, so there is no Python work per row.
    In CSV COPY an unquoted empty field is NULL and a quoted one an empty
    string, which is how Arrow writes nulls and empty strings.
    """
    if table.num_rows == 0:
        return 0
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=_CSV_OPTIONS)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in table.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(memoryview(sink.getvalue()))
    return table.num_rows


def copy_chunks(
    conn: psycopg.Connection, schema_name: str, table_name: str, rows: pa.Table, chunks: Sequence[int], overlap: bool
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
        written += copy_table(conn, partition, ordered)
    return written


def rows_per_chunk(rows: pa.Table) -> dict[int, int]:
    """How many rows each chunk receives."""
    chunk_ids, counts = np.unique(rows[CHUNK_COLUMN].to_numpy(), return_counts=True)
    return {int(c): int(n) for c, n in zip(chunk_ids, counts, strict=True)}
