"""Decide where every row of a batch goes: chunk, HEALPix index, overlap copies.

Pure transforms on Arrow tables (vectorised with numpy/healpy): director rows
get the chunk and order-29 index of their own position, plus copies for the
overlap partitions of nearby chunks; child rows get those of their director,
looked up in the coordinator's director index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa

from dms_db.catalog_schema import CatalogTable
from dms_db.physical import CHUNK_COLUMN, HEALPIX_COLUMN
from loaders.conform import ProblemCollector
from sharding.healpix import chunk_of_index, healpix_index, overlap_chunks


@dataclass(frozen=True)
class PartitionedBatch:
    """Rows with ``chunk_id`` and ``healpix_index`` added, and the overlap copies."""

    rows: pa.Table
    overlap: pa.Table | None


def partition_directors(batch: pa.Table, table: CatalogTable, chunk_order: int, margin_deg: float) -> PartitionedBatch:
    """Chunk and index of each director row from its own position, plus overlap copies."""
    assert table.ra_column and table.dec_column
    ra = batch[table.ra_column].to_numpy().astype(np.float64)
    dec = batch[table.dec_column].to_numpy().astype(np.float64)
    index = healpix_index(ra, dec)
    chunk = chunk_of_index(index, chunk_order)
    rows = batch.append_column(CHUNK_COLUMN, pa.array(chunk)).append_column(HEALPIX_COLUMN, pa.array(index))
    overlap = None
    if margin_deg > 0:
        positions, neighbour_chunks = overlap_chunks(ra, dec, chunk_order, margin_deg)
        if positions.size:
            copies = batch.take(pa.array(positions))
            overlap = copies.append_column(CHUNK_COLUMN, pa.array(neighbour_chunks)).append_column(
                HEALPIX_COLUMN, pa.array(index[positions])
            )
    return PartitionedBatch(rows, overlap)


def partition_children(
    batch: pa.Table,
    table: CatalogTable,
    director_table: str,
    schema_name: str,
    coordinator: psycopg.Connection,
    source: str,
    row_offset: int,
    problems: ProblemCollector,
) -> PartitionedBatch:
    """Chunk and index of each child row from its director; unknown directors are problems."""
    assert table.director_key
    keys_array = batch[table.director_key].combine_chunks()
    keys = keys_array.to_numpy(zero_copy_only=False)
    valid = ~keys_array.is_null().to_numpy(zero_copy_only=False)
    wanted = np.unique(keys[valid].astype(np.int64))
    found = coordinator.execute(
        "SELECT d.object_id, d.chunk_id, d.healpix_index FROM unnest(%s::bigint[]) AS wanted(id) "
        "JOIN dms.director_index d ON d.object_id = wanted.id AND d.schema_name = %s AND d.table_name = %s",
        ([int(k) for k in wanted], schema_name, director_table),
    ).fetchall()
    known = np.array([r[0] for r in found], dtype=np.int64)
    order = np.argsort(known)
    known_sorted = known[order]
    chunks = np.array([r[1] for r in found], dtype=np.int64)[order]
    indexes = np.array([r[2] for r in found], dtype=np.int64)[order]
    safe_keys = np.where(valid, keys, 0).astype(np.int64)
    if known_sorted.size == 0:  # sentinels keep the look-up below branch-free
        known_sorted, chunks, indexes = np.array([-1]), np.array([-1]), np.array([-1])
    slot_clipped = np.minimum(np.searchsorted(known_sorted, safe_keys), known_sorted.size - 1)
    matched = valid & (known_sorted[slot_clipped] == safe_keys) & (safe_keys != -1)
    problems.add_rows(
        source,
        valid & ~matched,
        row_offset,
        table.director_key,
        keys_array,
        f"refers to a {director_table} that is not loaded; load the {director_table} rows first",
    )
    chunk = np.where(matched, chunks[slot_clipped], -1)
    index = np.where(matched, indexes[slot_clipped], -1)
    rows = batch.append_column(CHUNK_COLUMN, pa.array(chunk)).append_column(HEALPIX_COLUMN, pa.array(index))
    return PartitionedBatch(rows, None)
