"""Write partitioned rows to the workers with binary COPY: in parallel, into partitions indexed once.

Rows of one chunk are sorted by HEALPix index and copied straight into that
chunk's partition (not through the parent, which would route row by row), on
every replica of the chunk.  The COPY payload is encoded by numpy
(:mod:`loaders.copy_binary`) once per batch, so no Python code runs per row and
each replica gets a slice of the same bytes.

Most of a worker's work in a bulk load is index maintenance.  So the
partitions of chunks that are new on a worker are *staged*
(:mod:`dms_db.physical`): created as plain tables without indexes, filled by
every batch of the load, then indexed (one build per index, several times
cheaper than updating it row by row, the pgSphere GiST above all) and attached
to their parent just before the load commits.  Chunks that already have a
partition take their rows through its indexes, as any insert does.

Each worker has its own connection in the load's distributed transaction and
a thread of its own: psycopg waits on the network and numpy and Arrow compute
without holding the GIL, so the workers are written at once while the loader
reads, checks and encodes the next batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from dms_db import fault_points
from dms_db.catalog_schema import CatalogSchema, CatalogTable
from dms_db.physical import (
    CHUNK_COLUMN,
    HEALPIX_COLUMN,
    attach_staged_partition,
    chunk_partition_name,
    stage_chunk_partitions,
)
from loaders.copy_binary import CopyColumn, EncodedRows, copy_binary_into, copy_encoded_into, encode_copy_rows

_ENCODE_ROWS = 65_536  # rows of a batch sorted and encoded at a time
MAX_PARALLEL_WORKERS = 8  # workers written at once; each is a client of one server
BATCHES_IN_FLIGHT = 2  # batches handed over and not yet on every worker: how far a worker may run ahead
# Index builds of new partitions: a chunk's sorts stay in memory, and no parallel build workers:
# every worker is building at once already, and on partitions of one chunk (~10^5 rows by design)
# a parallel B-tree build costs about 10 % more CPU in all than it saves (measured on 5 M rows).
INDEX_BUILD_SETTINGS = {"maintenance_work_mem": "256MB", "max_parallel_maintenance_workers": "0"}


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
    conn: psycopg.Connection,
    target: sql.Composable,
    table: pa.Table,
    pg_types: dict[str, str] | None = None,
) -> int:
    """COPY an Arrow table into ``target`` (columns by name); returns the row count.

    ``pg_types`` gives the target's actual column types where known (binary
    COPY must send exactly the stored type); other columns follow their Arrow type.
    """
    if table.num_rows == 0:
        return 0
    return copy_binary_into(conn, target, copy_columns(table.schema, pg_types), [table])


def copy_columns(schema: pa.Schema, pg_types: dict[str, str] | None = None) -> list[CopyColumn]:
    """The COPY columns of an Arrow schema: the stored type where known, else the Arrow type's."""
    known = pg_types or {}
    return [CopyColumn(f.name, known.get(f.name) or copy_type_of(f.type)) for f in schema]


@dataclass(frozen=True)
class EncodedChunks:
    """The rows of one batch ordered by chunk, then HEALPix index, and binary-encoded once.

    Each chunk's rows are then one zero-copy slice of the payload, whichever
    worker (and replica) they go to.
    """

    columns: tuple[CopyColumn, ...]
    encoded: EncodedRows
    spans: dict[int, tuple[int, int]]  # chunk -> (first row, row count)
    buffer: np.ndarray  # holds the payload; reusable once the rows are sent

    @classmethod
    def of(
        cls, rows: pa.Table, pg_types: dict[str, str] | None = None, buffer: np.ndarray | None = None
    ) -> EncodedChunks:
        """Sort and encode ``rows``, which carry ``chunk_id`` and ``healpix_index``, into ``buffer`` if it has room."""
        chunks = rows[CHUNK_COLUMN].to_numpy()
        order = _chunk_order(chunks, rows[HEALPIX_COLUMN].to_numpy())
        ids, first, counts = _runs(chunks[order])
        spans = {int(c): (int(f), int(n)) for c, f, n in zip(ids, first, counts, strict=True)}
        columns = tuple(copy_columns(rows.schema, pg_types))
        encoded, buffer = _encode_in_order(rows, order, columns, np.empty(0, np.uint8) if buffer is None else buffer)
        return cls(columns, encoded, spans, buffer)

    def of_chunk(self, chunk_id: int) -> memoryview | None:
        """The encoded rows of one chunk, sorted by HEALPix index; None if it has none."""
        span = self.spans.get(int(chunk_id))
        return None if span is None else self.encoded.rows(*span)


def _encode_in_order(
    rows: pa.Table, order: np.ndarray, columns: Sequence[CopyColumn], buffer: np.ndarray
) -> tuple[EncodedRows, np.ndarray]:
    """Encode ``rows`` in ``order`` into ``buffer`` (grown if too small); the rows and the buffer used.

    Rows are taken and encoded a slice at a time, straight into the buffer:
    no sorted copy of the whole batch is made, and a buffer kept from batch
    to batch is not faulted in afresh each time, as new batch-sized arrays are.
    """
    ends, position = [np.empty(0, np.int64)], 0
    for lo in range(0, rows.num_rows, _ENCODE_ROWS):
        part = encode_copy_rows(rows.take(order[lo : lo + _ENCODE_ROWS]), columns, out=buffer[position:])
        written = np.frombuffer(part.payload, np.uint8)
        if written.size and not np.may_share_memory(written, buffer):  # too small: grow, with room for the rest
            expected = (position + written.size) * rows.num_rows // min(lo + _ENCODE_ROWS, rows.num_rows)
            grown = np.empty(expected + expected // 4, np.uint8)
            grown[:position] = buffer[:position]
            grown[position : position + written.size] = written
            buffer = grown
        ends.append(part.ends + position)
        position += written.size
    return EncodedRows(buffer[:position].data, np.concatenate(ends)), buffer


def _chunk_order(chunks: np.ndarray, healpix: np.ndarray) -> np.ndarray:
    """Row order by chunk, then HEALPix index.

    A row's chunk is usually the chunk of its own HEALPix index, so sorting by
    the index alone is enough and much faster than a two-key sort; overlap
    copies (chunk of a neighbour) need both keys.
    """
    order = np.argsort(healpix)
    ordered = chunks[order]
    if np.all(ordered[1:] >= ordered[:-1]):
        return order
    return np.lexsort((healpix, chunks))


@dataclass(frozen=True)
class _Batch:
    """A batch handed to the workers: the work of each worker on it, and the buffers its rows are in."""

    work: list[Future[None]]
    buffers: dict[bool, np.ndarray]  # by is_overlap


class PartitionWriter:
    """Writes the partitioned batches of one load to the workers' partitions, then indexes new ones.

    Each worker has a thread of its own, so its steps run in order, and up to
    ``BATCHES_IN_FLIGHT`` batches may be queued: a worker that got fewer rows
    of a batch goes on with the next one instead of waiting for the others,
    and starts indexing as soon as its own rows are written.  Use as a context
    manager inside the load's distributed transaction: :meth:`write` each
    batch, :meth:`finish` once every batch is written.  Leaving the block
    waits for the threads, so that no connection is in use when the
    transaction is rolled back.
    """

    def __init__(
        self,
        catalog: CatalogSchema,
        table: CatalogTable,
        connections: Mapping[str, psycopg.Connection],
        pg_types: dict[str, str] | None = None,
        max_parallel: int = MAX_PARALLEL_WORKERS,
    ) -> None:
        self._catalog, self._table, self._pg_types = catalog, table, pg_types
        self._connections = dict(connections)
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._slots = threading.BoundedSemaphore(max(1, max_parallel))  # workers written at once
        self._failed = threading.Event()  # a step failed: the others skip theirs
        self._in_flight: deque[_Batch] = deque()
        self._last_steps: list[Future[None]] = []  # the index builds
        self._spare: dict[bool, np.ndarray] = {}  # by is_overlap: the buffer of the last batch written
        self._known: dict[str, set[int]] = {name: set() for name in self._connections}  # chunks with a partition
        self._staged: dict[str, list[tuple[int, bool]]] = {name: [] for name in self._connections}

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is not None:
            self._failed.set()
        wait([step for batch in self._in_flight for step in batch.work] + self._last_steps)
        for thread in self._threads.values():
            thread.shutdown()

    def write(self, rows: pa.Table, overlap: pa.Table | None, chunks_by_worker: Mapping[str, Sequence[int]]) -> None:
        """Hand one batch to the workers holding its chunks.

        The batch is sorted and encoded here while earlier ones are still
        being written; this returns once the threads have it, so the caller
        can prepare the next one meanwhile.
        """
        encoded = {False: EncodedChunks.of(rows, self._pg_types, self._spare_buffer(False))}
        if overlap is not None and overlap.num_rows:
            encoded[True] = EncodedChunks.of(overlap, self._pg_types, self._spare_buffer(True))
        while len(self._in_flight) >= BATCHES_IN_FLIGHT:
            self._written(self._in_flight.popleft())
        main, extra = encoded[False], encoded.get(True)
        work = [
            self._step(node, self._write_to_worker, node, list(chunks), main, extra)
            for node, chunks in chunks_by_worker.items()
        ]
        self._in_flight.append(_Batch(work, {kind: batch.buffer for kind, batch in encoded.items()}))

    def wait(self) -> None:
        """Block until every batch handed over is on the workers; raise the first error."""
        while self._in_flight:
            self._written(self._in_flight.popleft())

    def finish(self) -> None:
        """Index and attach the partitions this load created, each worker as soon as its rows are written."""
        # Every worker written to: its staged partitions are known only once its queued steps have run.
        self._last_steps = [self._step(node, self._attach_on_worker, node) for node in list(self._threads)]
        self.wait()
        _results(self._last_steps)

    def _written(self, batch: _Batch) -> None:
        """Wait for one batch to be on every worker; its buffers then serve a later batch."""
        _results(batch.work)
        for kind, buffer in batch.buffers.items():
            self._spare[kind] = buffer  # the next batch encoded takes it: one spare per kind is enough
        fault_points.reach("load:copied-batch")

    def _spare_buffer(self, overlap: bool) -> np.ndarray | None:
        return self._spare.pop(overlap, None)

    def _step(self, node: str, step: Callable[..., None], *args: object) -> Future[None]:
        """Run ``step`` in the thread of worker ``node``, after its earlier steps."""
        if node not in self._threads:
            self._threads[node] = ThreadPoolExecutor(1, f"dms-load-{node}")
        return self._threads[node].submit(self._guarded, step, *args)

    def _guarded(self, step: Callable[..., None], *args: object) -> None:
        if self._failed.is_set():
            return  # the load is being abandoned
        try:
            with self._slots:
                step(*args)
        except BaseException:
            self._failed.set()
            raise

    def _write_to_worker(
        self, node: str, chunks: list[int], main: EncodedChunks, overlap: EncodedChunks | None
    ) -> None:
        conn = self._connections[node]
        schema_name, table_name = self._catalog.name, self._table.name
        new = [c for c in chunks if c not in self._known[node]]
        if new:
            self._staged[node] += stage_chunk_partitions(conn, schema_name, self._table, new)
            self._known[node].update(new)
        for chunk_id in chunks:
            for rows, is_overlap in ((main, False), (overlap, True)):
                encoded = None if rows is None else rows.of_chunk(chunk_id)
                if encoded is not None:
                    partition = sql.Identifier(schema_name, chunk_partition_name(table_name, chunk_id, is_overlap))
                    copy_encoded_into(conn, partition, rows.columns, [encoded], savepoint=False, background_send=False)

    def _attach_on_worker(self, node: str) -> None:
        if not self._staged[node]:
            return
        conn = self._connections[node]
        for name, value in INDEX_BUILD_SETTINGS.items():
            conn.execute(sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        for chunk_id, is_overlap in self._staged[node]:
            attach_staged_partition(conn, self._catalog, self._table, chunk_id, is_overlap)


def _results(futures: Sequence[Future[None]]) -> None:
    """Wait for every future, then raise the first error: no thread may outlive a failed step."""
    wait(futures)
    for future in futures:
        future.result()


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
    chunk_ids, _, counts = _runs(np.sort(rows[CHUNK_COLUMN].to_numpy()))
    return {int(c): int(n) for c, n in zip(chunk_ids, counts, strict=True)}


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, first position, length) of each run of equal values in a sorted array.

    What ``np.unique(..., return_index=True, return_counts=True)`` gives for
    sorted input, without its own sort.
    """
    first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if ordered.size else ordered[:0]
    return ordered[first], first, np.diff(np.append(first, ordered.size))
