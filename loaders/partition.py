"""Decide where every row of a batch goes: chunk, HEALPix index, overlap copies.

Pure transforms on Arrow tables (vectorised with numpy/healpy): director rows
get the chunk and order-29 index of their own position, plus copies for the
overlap partitions of nearby chunks; child rows get the chunk of their
director, looked up in the coordinator's director index, and the order-29
index of their own position (their director's when they have none), which the
coordinator's HEALPix ranges select them by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from dms_db.catalog_schema import CatalogTable
from dms_db.physical import CHUNK_COLUMN, HEALPIX_COLUMN
from loaders.conform import ProblemCollector, one_array
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


class DirectorLocations:
    """Chunk and HEALPix index of the directors a load's child rows refer to, each read once.

    The children of one director come in many batches (a DiaObject has
    DiaSources in many visits), so the locations read from the coordinator's
    director index are kept for the rest of the load and a batch asks only for
    directors not seen before.  A director's location never changes, so the
    copy cannot go stale.
    """

    def __init__(self, coordinator: psycopg.Connection, schema_name: str, director_table: str) -> None:
        self._coordinator, self._schema_name, self._director_table = coordinator, schema_name, director_table
        self._ids = np.empty(0, np.int64)  # sorted
        self._chunks = np.empty(0, np.int64)
        self._indexes = np.empty(0, np.int64)
        self._positions: pd.Index | None = None  # hash lookup of _ids, rebuilt when directors are learnt

    @property
    def director_table(self) -> str:
        """The director table looked up."""
        return self._director_table

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, chunk, HEALPix index) of each director id; chunk and index are -1 where not found."""
        keys = keys.astype(np.int64, copy=False)
        ordered = np.sort(keys)  # the distinct ids, by sorting: numpy's unique hashes, far slower here
        self._learn(ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if ordered.size else ordered)
        if self._ids.size == 0:
            missing = np.full(keys.size, -1, np.int64)
            return np.zeros(keys.size, bool), missing, missing.copy()
        # A hash look-up: a binary search of a batch's unsorted keys in 2 * 10^5 ids took ~25 ms a batch, this ~3 ms.
        if self._positions is None:
            self._positions = pd.Index(self._ids)
        slot = self._positions.get_indexer(keys)
        found = slot >= 0
        return found, np.where(found, self._chunks[slot], -1), np.where(found, self._indexes[slot], -1)

    def _learn(self, wanted: np.ndarray) -> None:
        """Read the locations of the ``wanted`` (sorted) directors not known yet."""
        if self._ids.size:
            slot = np.minimum(np.searchsorted(self._ids, wanted), self._ids.size - 1)
            wanted = wanted[self._ids[slot] != wanted]
        if wanted.size == 0:
            return
        found = self._coordinator.execute(
            "SELECT d.object_id, d.chunk_id, d.healpix_index FROM unnest(%s::bigint[]) AS wanted(id) "
            "JOIN dms.director_index d ON d.object_id = wanted.id AND d.schema_name = %s AND d.table_name = %s",
            ([int(k) for k in wanted], self._schema_name, self._director_table),
        ).fetchall()
        if not found:
            return
        ids, chunks, indexes = np.array(found, dtype=np.int64).T
        ids, chunks, indexes = (
            np.concatenate(pair) for pair in ((self._ids, ids), (self._chunks, chunks), (self._indexes, indexes))
        )
        order = np.argsort(ids, kind="stable")
        self._ids, self._chunks, self._indexes = ids[order], chunks[order], indexes[order]
        self._positions = None


def partition_children(
    batch: pa.Table,
    table: CatalogTable,
    directors: DirectorLocations,
    source: str,
    row_offset: int,
    problems: ProblemCollector,
) -> PartitionedBatch:
    """Chunk and index of each child row from its director; unknown directors are problems."""
    assert table.director_key
    keys_array = one_array(batch[table.director_key])
    valid = ~keys_array.is_null().to_numpy(zero_copy_only=False)
    keys = np.where(valid, keys_array.fill_null(0).to_numpy(zero_copy_only=False), 0).astype(np.int64)
    found, chunk, index = directors.locate(keys)
    found &= valid
    chunk, index = np.where(found, chunk, -1), np.where(found, index, -1)
    director_table = directors.director_table
    problems.add_rows(
        source,
        valid & ~found,
        row_offset,
        table.director_key,
        keys_array,
        f"refers to a {director_table} that is not loaded; load the {director_table} rows first",
    )
    if table.ra_column and table.dec_column:
        index = _own_index_where_known(batch, table.ra_column, table.dec_column, fallback=index)
    rows = batch.append_column(CHUNK_COLUMN, pa.array(chunk)).append_column(HEALPIX_COLUMN, pa.array(index))
    return PartitionedBatch(rows, None)


def _own_index_where_known(batch: pa.Table, ra_column: str, dec_column: str, fallback: np.ndarray) -> np.ndarray:
    """Order-29 index of each row's own position; ``fallback`` where the position is null.

    A row without a position never satisfies a spatial condition, so which
    index it carries does not change any answer; its director's keeps it
    next to its siblings.  Invalid positions were reported by ``conform`` (this
    still runs so that unknown directors are reported too) and count as unknown.
    """
    ra_array, dec_array = one_array(batch[ra_column]), one_array(batch[dec_column])
    ra = ra_array.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    dec = dec_array.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        known = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    known &= ~(ra_array.is_null().to_numpy(zero_copy_only=False) | dec_array.is_null().to_numpy(zero_copy_only=False))
    if not known.any():
        return fallback
    own = healpix_index(np.where(known, ra, 0.0), np.where(known, dec, 0.0))
    return np.where(known, own, fallback)
