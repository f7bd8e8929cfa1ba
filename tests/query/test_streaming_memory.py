"""A query returning 2M rows streams through the coordinator with bounded memory.

Two million narrow ``apdb.DiaSource`` rows (with their DiaObjects) are
loaded into a 4-worker cluster; the test then consumes two queries that
return them all while a thread samples this process's resident set size:

* a plain scan, whose worker rows are streamed straight to the caller;
* the same scan ``ORDER BY`` the key without ``TOP``, which the coordinator
  merges through a temp table of its own PostgreSQL and reads back with a
  server-side cursor.

The bound is relative, not absolute: the size the rows would take if the
engine (or the caller) held them as Python tuples, measured on a sample of
real result rows and scaled to 2M.  Peak RSS growth must stay below a
quarter of it, which an engine that buffered the result (or most of it) in
the coordinator process would exceed.  Nothing here measures time.

Memory this process freed earlier but still holds could absorb a buffering
engine's growth unseen, so the rows are generated and loaded in a spawned
child process, and glibc is asked to return its free heap pages to the
system before each baseline.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.config import DmsConfig
from dms_db.topology import Topology
from loaders.bulk_load import load_inputs
from sharding.coordinator import QueryEngine
from tests.harness import DatabaseCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

N_OBJECTS = 20_000
SOURCES_PER_OBJECT = 100
N_SOURCES = N_OBJECTS * SOURCES_PER_OBJECT
CHUNK_ORDER = 6  # ~0.84 deg2 chunks: a few dozen over the field, spread over the 4 workers
FIELD_RA, FIELD_DEC, FIELD_RADIUS_DEG = 45.0, -30.0, 3.0
SAMPLE_ROWS = 50_000
FULL_TO_BOUND = 4  # peak growth must stay below 1/4 of the rows' size as tuples
RSS_INTERVAL_S = 0.005

SCAN = "SELECT diaSourceId, ra, dec FROM apdb.DiaSource"
SORTED_SCAN = "SELECT diaSourceId, ra, dec FROM apdb.DiaSource ORDER BY diaSourceId"


def _field_positions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions in a cap of radius FIELD_RADIUS_DEG around the field centre (flat-sky is enough)."""
    radius = FIELD_RADIUS_DEG * np.sqrt(rng.random(n))
    angle = rng.random(n) * 2 * np.pi
    dec = FIELD_DEC + radius * np.sin(angle)
    ra = FIELD_RA + radius * np.cos(angle) / np.cos(np.radians(dec))
    return ra, dec


def narrow_survey(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DiaObjects and their DiaSources with only the columns the schema requires, built with numpy."""
    rng = np.random.default_rng(seed)
    ra, dec = _field_positions(rng, N_OBJECTS)
    object_ids = np.arange(1, N_OBJECTS + 1, dtype=np.int64)
    objects = pd.DataFrame({"diaObjectId": object_ids, "ra": ra, "dec": dec})
    objects["nDiaSources"] = np.full(N_OBJECTS, SOURCES_PER_OBJECT, dtype=np.int32)
    for band in "ugrizy":
        objects[f"{band}_psfFluxNdata"] = np.zeros(N_OBJECTS, dtype=np.int32)
    owner = np.repeat(np.arange(N_OBJECTS), SOURCES_PER_OBJECT)
    jitter = 1e-5 * rng.standard_normal((2, N_SOURCES))
    sources = pd.DataFrame(
        {
            "diaSourceId": np.arange(1, N_SOURCES + 1, dtype=np.int64),
            "visit": rng.integers(1, 1000, N_SOURCES, dtype=np.int64),
            "detector": rng.integers(0, 189, N_SOURCES, dtype=np.int16),
            "diaObjectId": object_ids[owner],
            "midpointMjdTai": 60_000.0 + rng.random(N_SOURCES) * 365.0,
            "band": np.array(list("ugrizy"))[rng.integers(0, 6, N_SOURCES)],
            "ra": ra[owner] + jitter[0],
            "dec": dec[owner] + jitter[1],
        }
    )
    return objects, sources


class PeakRss:
    """Samples this process's RSS in a thread and keeps the peak, from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        """Current resident set size in bytes."""
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(RSS_INTERVAL_S)

    def __enter__(self) -> PeakRss:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@dataclass(frozen=True)
class Consumed:
    """What a consumer saw of a result: row count, key checksum, and the peak RSS growth while it ran."""

    rows: int
    id_sum: int
    ordered: bool
    baseline_rss: int
    peak_growth: int


def release_free_memory() -> None:
    """Collect garbage and return glibc's free heap pages to the system (where glibc is the C library)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def consume(engine: QueryEngine, adql_text: str) -> Consumed:
    """Run a query and read every row without keeping any, sampling RSS throughout."""
    release_free_memory()
    sampler = PeakRss()
    baseline = sampler.rss()
    rows = id_sum = 0
    ordered = True
    previous = 0
    with sampler, engine.query(adql_text, max_rows=None) as result:
        for row in result:
            rows += 1
            id_sum += row[0]
            ordered = ordered and row[0] > previous
            previous = row[0]
    return Consumed(rows, id_sum, ordered, baseline, sampler.peak - baseline)


def tuple_bytes(row: tuple[Any, ...]) -> int:
    """Memory a result row takes as a Python tuple: the tuple and each value object."""
    return sys.getsizeof(row) + sum(sys.getsizeof(value) for value in row)


def rows_size_as_tuples(engine: QueryEngine) -> tuple[int, int]:
    """Bytes of SAMPLE_ROWS real result rows as tuples, and that scaled to all N_SOURCES rows."""
    with engine.query(SCAN, max_rows=SAMPLE_ROWS) as result:
        sample = list(result)
    assert len(sample) == SAMPLE_ROWS
    sample_bytes = sum(tuple_bytes(row) for row in sample)
    return sample_bytes, sample_bytes * (N_SOURCES // SAMPLE_ROWS)


def load_narrow_survey(topology: Topology, config: DmsConfig) -> dict[str, tuple[int, int]]:
    """Deploy ``apdb`` and load :func:`narrow_survey`; rows loaded and rows given, per table (run in a child)."""
    deploy_schema_file(config, "apdb", chunk_order=CHUNK_ORDER)
    objects, sources = narrow_survey()
    loaded = {}
    for table, frame in (("DiaObject", objects), ("DiaSource", sources)):
        report = load_inputs(topology, f"apdb.{table}", [frame], batch_rows=500_000)
        loaded[table] = (report.rows, len(frame))
    return loaded


@pytest.fixture
def loaded_engine(make_cluster: Callable[..., DatabaseCluster]) -> Iterator[QueryEngine]:
    """An engine on a 4-worker cluster holding N_SOURCES DiaSources of N_OBJECTS DiaObjects."""
    cluster = make_cluster(workers=4)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
        loaded = child.submit(load_narrow_survey, cluster.topology, cluster.config).result()
    for table, (rows, given) in loaded.items():
        assert rows == given, f"apdb.{table}: loaded {rows} of {given} rows"
    with QueryEngine(cluster.topology) as engine:
        yield engine


def test_two_million_rows_stream_with_bounded_memory(loaded_engine: QueryEngine) -> None:
    with loaded_engine.query("SELECT COUNT(*) AS n FROM apdb.DiaSource") as result:
        # Warms up the engine (catalog, placement, connection pools) so that the baseline includes them.
        assert list(result) == [(N_SOURCES,)]
    plain = consume(loaded_engine, SCAN)
    merged = consume(loaded_engine, SORTED_SCAN)
    sample_bytes, full_bytes = rows_size_as_tuples(loaded_engine)
    bound = full_bytes // FULL_TO_BOUND
    expected_sum = N_SOURCES * (N_SOURCES + 1) // 2
    mib = 1 << 20
    for name, adql_text, seen in (("plain scan", SCAN, plain), ("ORDER BY merge", SORTED_SCAN, merged)):
        assert seen.rows == N_SOURCES, f"{name}: {seen.rows} rows instead of {N_SOURCES}\nADQL: {adql_text}"
        assert seen.id_sum == expected_sum, f"{name}: rows lost or repeated (id checksum)\nADQL: {adql_text}"
        assert seen.peak_growth < bound, (
            f"{name}: peak RSS grew by {seen.peak_growth / mib:.1f} MiB (baseline {seen.baseline_rss / mib:.1f} MiB) "
            f"while streaming {N_SOURCES} rows; the limit is {bound / mib:.1f} MiB = 1/{FULL_TO_BOUND} of "
            f"{full_bytes / mib:.1f} MiB, the rows' size as Python tuples ({sample_bytes / mib:.2f} MiB measured "
            f"on {SAMPLE_ROWS} rows x {N_SOURCES // SAMPLE_ROWS})\nADQL: {adql_text}"
        )
    assert merged.ordered, f"ORDER BY merge: rows not in diaSourceId order\nADQL: {SORTED_SCAN}"
    print(
        f"\nrows as tuples: {full_bytes / mib:.1f} MiB (sample {sample_bytes / mib:.2f} MiB x "
        f"{N_SOURCES // SAMPLE_ROWS}); bound {bound / mib:.1f} MiB; peak RSS growth: plain scan "
        f"{plain.peak_growth / mib:.1f} MiB, ORDER BY merge {merged.peak_growth / mib:.1f} MiB "
        f"(baselines {plain.baseline_rss / mib:.1f} / {merged.baseline_rss / mib:.1f} MiB)"
    )
