"""Load catalog rows into the cluster: all or nothing, once.

The steps for one load into one table:

1. resolve the target table and its catalog (chunk order, overlap margin);
2. look the inputs' digest up in the ledger: the same inputs loaded before
   are not loaded again;
3. stream the inputs in batches: conform to the schema, check keys, compute
   chunks (children from the director index), place new chunks, COPY rows into
   the partitions of every replica, all workers at once, while the next batch
   is read (:mod:`loaders.writer`); partitions of new chunks are created
   without indexes and not yet attached;
4. if any input row was bad, roll everything back and report the problems;
   otherwise build the indexes of the new partitions and attach them, then
   commit on every worker and the coordinator with two-phase commit, the
   ledger, director index and row counts included.

Everything, new partitions included, happens inside the load's distributed
transaction, so a failed load leaves nothing behind.  Attaching a partition
takes a lock on its parent that blocks other loads and DDL on that table on
that worker until the load commits, not readers.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from dms_db import fault_points, migration_support
from dms_db.catalog_schema import CatalogSchema, CatalogTable, TableKind, load_catalog_schema
from dms_db.distributed_transaction import DistributedTransaction, distributed_transaction, new_gid
from dms_db.errors import NotFoundError, SchemaError
from dms_db.physical import CHUNK_COLUMN, HEALPIX_COLUMN, LOAD_ID_COLUMN
from dms_db.topology import Topology
from loaders import ledger
from loaders.conform import ProblemCollector, conform_batch, one_array
from loaders.errors import LoadValidationError
from loaders.key_ranges import KeyRanges, partition_key_ranges
from loaders.partition import DirectorLocations, PartitionedBatch, partition_children, partition_directors
from loaders.sources import DEFAULT_BATCH_ROWS, file_digest, frame_batches, open_source, read_batches, table_digest
from loaders.statistics import analyze_loaded
from loaders.writer import PartitionWriter, copy_table, rows_per_chunk, stored_column_types
from sharding.placement import ChunkReplicas, place_chunks

ProgressCallback = Callable[[int], None]
LoadInput = Path | str | pd.DataFrame | pa.Table


@dataclass(frozen=True)
class LoadTarget:
    """The table a load writes to, with its catalog's partitioning parameters."""

    catalog: CatalogSchema
    table: CatalogTable
    chunk_order: int
    overlap_deg: float
    replication: int
    stored_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadReport:
    """What a load did."""

    target: str
    load_id: int | None
    rows: int
    already_loaded: bool
    chunks: int = 0
    overlap_rows: int = 0
    seconds: float = 0.0


def resolve_target(coordinator: psycopg.Connection, target: str, replication: int) -> LoadTarget:
    """Find ``schema.Table`` among the deployed catalogs."""
    schema_name, _, table_name = target.partition(".")
    if not table_name:
        raise NotFoundError(f"load target {target!r} must be SCHEMA.TABLE", hint="e.g. apdb.DiaSource")
    row = coordinator.execute(
        "SELECT source_yaml, chunk_order, overlap_arcsec FROM dms.catalog WHERE schema_name = %s", (schema_name,)
    ).fetchone()
    if row is None:
        known = [r[0] for r in coordinator.execute("SELECT schema_name FROM dms.catalog ORDER BY 1")]
        raise NotFoundError(
            f"no catalog named {schema_name!r} is deployed",
            hint=f"deployed: {', '.join(known) or 'none'}; deploy with 'dms-db schema deploy'",
        )
    catalog = load_catalog_schema(row[0], name=schema_name)
    try:
        table = catalog.table(table_name)
    except SchemaError as exc:
        raise NotFoundError(exc.message, hint=exc.hint) from None
    return LoadTarget(catalog, table, int(row[1]), float(row[2]) / 3600.0, replication)


def _with_stored_types(target: LoadTarget, topology: Topology) -> LoadTarget:
    """The target with its columns' stored types, read from the first worker."""
    with psycopg.connect(topology.workers[0].dsn) as conn:
        types = stored_column_types(conn, target.catalog.name, target.table.name)
    return replace(target, stored_types=types)


class KeyRuns:
    """The keys of the batches loaded so far, as a few sorted runs.

    Runs are merged like the digits of a binary counter (a run is merged into
    the one before it once it is at least half its size), so there are about
    log2(batches) runs and each key is copied about as often; a batch is
    looked up only in the runs whose range it overlaps, which for increasing
    ids, the usual case, is none.

    >>> runs = KeyRuns()
    >>> runs.add(np.array([1, 5, 9]))
    >>> runs.add(np.array([10, 12]))
    >>> runs.contains(np.array([5, 6, 12])).tolist()
    [True, False, True]
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, sorted_keys: np.ndarray) -> None:
        """Remember the keys of one batch (sorted, unique)."""
        if sorted_keys.size == 0:
            return
        self._runs.append(sorted_keys)
        while len(self._runs) > 1 and 2 * self._runs[-1].size >= self._runs[-2].size:
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(np.sort(np.concatenate([older, newer])))

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Which of ``values`` were added before."""
        found = np.zeros(values.size, bool)
        if values.size == 0:
            return found
        low, high = values.min(), values.max()
        for run in self._runs:
            if run[0] <= high and run[-1] >= low:
                found |= _member(values, run)
        return found


def repeated_in_batch(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, which rows repeat a value of an earlier row).

    By sorting: numpy's ``unique`` hashes, which is many times slower on a
    batch of 64-bit ids.

    >>> unique, repeated = repeated_in_batch(np.array([7, 3, 7, 1, 3]))
    >>> unique.tolist(), repeated.tolist()
    ([1, 3, 7], [False, False, True, False, True])
    """
    ordered = np.sort(values)
    new = np.ones(values.size, bool)
    new[1:] = ordered[1:] != ordered[:-1]
    repeated = np.zeros(values.size, bool)
    if not new.all():  # rare: find which occurrences come after the first
        order = np.argsort(values, kind="stable")
        repeated[order[~new]] = True
    return ordered[new], repeated


@dataclass
class _LoadState:
    """Running totals of one load."""

    rows: int = 0
    overlap_rows: int = 0
    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen_keys: KeyRuns = field(default_factory=KeyRuns)
    director_rows: list[pa.Table] = field(default_factory=list)
    check_existing: bool = True
    directors: DirectorLocations | None = None  # children: where their directors are, read once
    key_ranges: KeyRanges | None = None  # each partition's key range before the load
    placement: dict[int, ChunkReplicas] = field(default_factory=dict)  # chunk -> its workers


def load_inputs(
    topology: Topology,
    target_name: str,
    inputs: Sequence[LoadInput],
    *,
    replication: int = 1,
    column_map: dict[str, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Load files or in-memory tables into ``schema.Table``, atomically and at most once.

    Raises
    ------
    LoadValidationError
        Some rows break the schema; nothing was written.
    LoadInputError
        An input cannot be read; nothing was written.
    """
    started = time.monotonic()
    migration_support.ensure_schema_current(topology)
    coordinator = psycopg.connect(topology.coordinator.dsn)
    try:
        target = _with_stored_types(resolve_target(coordinator, target_name, replication), topology)
        name = f"{target.catalog.name}.{target.table.name}"
        digest, source_name = _inputs_identity(name, inputs)
        done = ledger.committed_load(coordinator, target.catalog.name, target.table.name, digest)
        if done is not None:
            return LoadReport(name, done.load_id, done.row_count, already_loaded=True)
        gid = new_gid("load")
        load_id = ledger.begin_load(coordinator, target.catalog.name, target.table.name, source_name, digest, gid)
        try:
            state = _run_load(topology, target, inputs, load_id, gid, column_map, batch_rows, progress)
        except BaseException as exc:
            coordinator.rollback()
            ledger.mark_aborted(coordinator, load_id, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            ledger.release(coordinator, load_id)
    finally:
        coordinator.close()
    analyze_loaded(
        topology,
        target.catalog.name,
        target.table,
        {chunk_id: replicas.nodes for chunk_id, replicas in state.placement.items()},
    )
    return LoadReport(
        name, load_id, state.rows, False, len(state.counts), state.overlap_rows, time.monotonic() - started
    )


def _inputs_identity(name: str, inputs: Sequence[LoadInput]) -> tuple[str, str]:
    digest = hashlib.sha256(name.encode())
    names = []
    for item in inputs:
        if isinstance(item, pd.DataFrame | pa.Table):
            table = item if isinstance(item, pa.Table) else pa.Table.from_pandas(item, preserve_index=False)
            digest.update(table_digest(table).encode())
            names.append("<table>")
        else:
            path = Path(item)
            open_source(path)  # fail early on missing, empty or mislabelled files
            digest.update(file_digest(path).encode())
            names.append(path.name)
    return digest.hexdigest(), ", ".join(names)[:1000]


def _batches(item: LoadInput, batch_rows: int, column_map: dict[str, str] | None) -> tuple[str, Iterator[pa.Table]]:
    if isinstance(item, pd.DataFrame | pa.Table):
        return "<table>", frame_batches(item, batch_rows)
    source = open_source(Path(item))
    return source.name, read_batches(source, batch_rows, column_map, string_columns=None)


def _run_load(
    topology: Topology,
    target: LoadTarget,
    inputs: Sequence[LoadInput],
    load_id: int,
    gid: str,
    column_map: dict[str, str] | None,
    batch_rows: int,
    progress: ProgressCallback | None,
) -> _LoadState:
    problems = ProblemCollector()
    state = _LoadState(check_existing=_table_has_rows(topology, target))
    with (
        distributed_transaction(topology, "load", gid=gid) as txn,
        PartitionWriter(target.catalog, target.table, txn.workers, target.stored_types) as writer,
    ):
        for item in inputs:
            source, batches = _batches(item, batch_rows, column_map)
            offset = 0
            for raw in batches:
                conformed = conform_batch(raw, target.table, source, offset, problems)
                _check_keys(conformed, target, txn, writer, topology, source, offset, problems, state)
                _write_batch(conformed, target, txn, writer, topology, load_id, source, offset, problems, state)
                offset += raw.num_rows
                if progress is not None:
                    progress(raw.num_rows)
        if problems:
            raise LoadValidationError(problems.problems, problems.total)
        writer.finish()
        fault_points.reach("load:written")
        _finish_coordinator(txn.coordinator, target, load_id, state)
    return state


def _check_keys(
    batch: pa.Table,
    target: LoadTarget,
    txn: DistributedTransaction,
    writer: PartitionWriter,
    topology: Topology,
    source: str,
    offset: int,
    problems: ProblemCollector,
    state: _LoadState,
) -> None:
    """Primary keys must be unique within the load and new to the catalog."""
    key = target.table.primary_key
    if len(key) != 1:
        return  # composite keys are enforced by the unique index of each partition
    column = one_array(batch[key[0]])
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype.kind not in "iu":
        return
    values = values.astype(np.int64)
    unique, repeated = repeated_in_batch(values)
    earlier = state.seen_keys.contains(values)
    problems.add_rows(source, repeated | earlier, offset, key[0], column, "duplicate key within this load")
    state.seen_keys.add(unique)
    if not state.check_existing:
        return
    candidates = unique
    if target.table.kind is not TableKind.DIRECTOR:  # directors are looked up in the coordinator's index
        if state.key_ranges is None:  # before this load writes anything
            writer.wait()  # the workers' connections must be free to ask them
            state.key_ranges = _key_ranges(target, txn, topology, key[0])
        candidates = unique[state.key_ranges.might_hold(unique)]
        if candidates.size == 0:
            return
        writer.wait()
    existing = np.sort(_existing_keys(target, txn, topology, key[0], candidates))
    problems.add_rows(source, _member(values, existing) & ~earlier, offset, key[0], column, "already in the catalog")


def _key_ranges(target: LoadTarget, txn: DistributedTransaction, topology: Topology, key: str) -> KeyRanges:
    """The key ranges of every partition on the workers (one worker for a replicated table)."""
    workers = topology.workers[:1] if target.table.kind is TableKind.REPLICATED else topology.workers
    return KeyRanges(
        interval
        for worker in workers
        for interval in partition_key_ranges(
            txn.on(worker.name), target.catalog.name, target.table.name, key, partitioned=target.table.is_partitioned
        )
    )


def _table_has_rows(topology: Topology, target: LoadTarget) -> bool:
    """Whether earlier loads left rows a new key could collide with.

    Asking every worker about every key is the costliest step of a big load,
    and pointless for a table that is still empty (the common first load of a
    data release).  Replicated tables are small and always checked.
    """
    if target.table.kind is TableKind.REPLICATED:
        return True
    with psycopg.connect(topology.coordinator.dsn) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM dms.chunk_row_count WHERE schema_name = %s AND table_name = %s "
            "AND row_count > 0)",
            (target.catalog.name, target.table.name),
        ).fetchone()
    return bool(row[0])


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted set, by binary search (much faster on millions of ids)."""
    if sorted_set.size == 0:
        return np.zeros(values.size, bool)
    slot = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[slot] == values


def _existing_keys(
    target: LoadTarget, txn: DistributedTransaction, topology: Topology, key: str, values: np.ndarray
) -> np.ndarray:
    """Which of ``values`` are already in the catalog.

    Workers are asked inside the load's own transactions; the director
    index is read outside it.
    """
    ids = [int(v) for v in values]
    if target.table.kind is TableKind.DIRECTOR:
        with psycopg.connect(topology.coordinator.dsn, autocommit=True) as coordinator:
            rows = coordinator.execute(
                "SELECT object_id FROM dms.director_index WHERE schema_name = %s AND table_name = %s "
                "AND object_id = ANY(%s)",
                (target.catalog.name, target.table.name, ids),
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)
    query = sql.SQL("SELECT {key} FROM {table} WHERE {key} = ANY(%s)").format(
        key=sql.Identifier(key), table=sql.Identifier(target.catalog.name, target.table.name)
    )
    workers = topology.workers[:1] if target.table.kind is TableKind.REPLICATED else topology.workers
    found: list[int] = []
    for worker in workers:
        found += [r[0] for r in txn.on(worker.name).execute(query, (ids,))]
    return np.array(found, dtype=np.int64)


def _write_batch(
    batch: pa.Table,
    target: LoadTarget,
    txn: DistributedTransaction,
    writer: PartitionWriter,
    topology: Topology,
    load_id: int,
    source: str,
    offset: int,
    problems: ProblemCollector,
    state: _LoadState,
) -> None:
    """Partition a batch and, if the load is still clean, COPY it.

    Partitioning runs even after problems were found, so that unknown
    directors in later rows are reported too.
    """
    batch = batch.append_column(LOAD_ID_COLUMN, pa.array(np.full(batch.num_rows, load_id, dtype=np.int64)))
    table = target.table
    if table.kind is TableKind.REPLICATED:
        if problems:
            return
        for conn in txn.workers.values():
            copy_table(conn, sql.Identifier(target.catalog.name, table.name), batch, target.stored_types)
        state.rows += batch.num_rows
        return
    if table.kind is TableKind.DIRECTOR:
        if problems:
            return
        parts = partition_directors(batch, table, target.chunk_order, target.overlap_deg)
    else:
        assert table.director_table is not None
        if state.directors is None:
            state.directors = DirectorLocations(txn.coordinator, target.catalog.name, table.director_table)
        parts = partition_children(batch, table, state.directors, source, offset, problems)
        if problems:
            return
    _copy_partitioned(parts, target, writer, topology, state)
    if table.kind is TableKind.DIRECTOR:
        state.director_rows.append(
            parts.rows.select([table.director_key, CHUNK_COLUMN, HEALPIX_COLUMN]).rename_columns(
                ["object_id", "chunk_id", "healpix_index"]
            )
        )


def _copy_partitioned(
    parts: PartitionedBatch, target: LoadTarget, writer: PartitionWriter, topology: Topology, state: _LoadState
) -> None:
    counts = rows_per_chunk(parts.rows)
    all_chunks = set(counts)
    if parts.overlap is not None:
        all_chunks |= set(rows_per_chunk(parts.overlap))
    unplaced = sorted(all_chunks - state.placement.keys())
    if unplaced:  # a chunk's replicas are fixed once placed: each chunk is asked for once per load
        state.placement.update(_place(topology, target, unplaced))
    placement = state.placement
    by_worker: dict[str, list[int]] = defaultdict(list)
    for chunk_id in sorted(all_chunks):
        for node in placement[chunk_id].nodes:
            by_worker[node].append(chunk_id)
    writer.write(parts.rows, parts.overlap, by_worker)
    for chunk_id, count in counts.items():
        state.counts[chunk_id] += count
    state.rows += parts.rows.num_rows
    state.overlap_rows += 0 if parts.overlap is None else parts.overlap.num_rows


def _place(topology: Topology, target: LoadTarget, chunks: list[int]) -> dict[int, ChunkReplicas]:
    """Place chunks in a short transaction of its own, so concurrent loads are not serialised for long."""
    with psycopg.connect(topology.coordinator.dsn) as conn:
        return place_chunks(conn, target.chunk_order, chunks, target.replication)


def _finish_coordinator(conn: psycopg.Connection, target: LoadTarget, load_id: int, state: _LoadState) -> None:
    """Director index, row counts and ledger: committed with the decision."""
    schema_name, table_name = target.catalog.name, target.table.name
    if state.director_rows:
        index_rows = pa.concat_tables(state.director_rows)
        index_rows = index_rows.append_column("schema_name", pa.array([schema_name] * index_rows.num_rows))
        index_rows = index_rows.append_column("table_name", pa.array([table_name] * index_rows.num_rows))
        index_rows = index_rows.append_column("load_id", pa.array(np.full(index_rows.num_rows, load_id)))
        copy_table(conn, sql.Identifier("dms", "director_index"), index_rows)
    if state.counts:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dms.chunk_row_count (schema_name, table_name, chunk_id, row_count) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (schema_name, table_name, chunk_id) "
                "DO UPDATE SET row_count = dms.chunk_row_count.row_count + EXCLUDED.row_count",
                [(schema_name, table_name, c, n) for c, n in state.counts.items()],
            )
    ledger.mark_committed(conn, load_id, state.rows)
