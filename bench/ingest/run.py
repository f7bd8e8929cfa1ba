"""End-to-end ingest benchmark: the dms-db loader against a raw binary COPY into one plain table.

One command::

    .venv/bin/python -m bench.ingest.run [--rows 5000000] [--workers 4] [--repeats 3] [--profile]

It starts a private local cluster (fsync off) in a temporary directory, simulates a survey (in a
child process, so that the simulator's memory does not count as the loader's) and writes it to
Parquet, picks a chunk order giving about 10^5 DiaSources per chunk, then ``--repeats`` times
deploys ``apdb`` under a name of its own, loads its DiaObjects, and times, alternating:

* ``loaders.bulk_load.load_inputs(topology, "apdb.DiaSource", [parquet])``: the real loader
  (read Parquet, conform, key checks, director look-up, partition, COPY to the workers, 2PC);
* the baseline: the same rows, conformed and binary-encoded beforehand (not timed), COPYed by
  psycopg in one ``COPY ... FROM STDIN (FORMAT BINARY)`` into one unindexed plain table on the
  coordinator's server (schema ``bench_baseline``) - what one PostgreSQL server ingests.

The ratio is that of the medians of both sides' runs (the ratio of their best runs is printed
too). Then ``--append-rows`` DiaSources with new ids are loaded into the first run's partitions
and timed: a nightly append, through the partitions' indexes. Figures are printed and written
to ``bench/results/ingest.json``; ``--profile`` also runs the first loader run under cProfile and
prints the top functions (``bench/results/ingest-loader.prof``).
The cluster is stopped and its directory deleted at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from multiprocessing import get_context
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
TARGET_ROWS_PER_CHUNK = 100_000
# loaders.simulate: about 5 million DiaSources from 400 000 objects and 900 visits.
OBJECTS_PER_DIASOURCE = 400_000 / 5_000_000
OBJECT_MARGIN = 1.15  # simulate a little more than asked, then keep exactly --rows
BASELINE_SCHEMA = "bench_baseline"


# ---------------------------------------------------------------- machine probes


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """ru_maxrss of this process (Linux reports KiB): the peak over its whole life."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_hwm() -> bool:
    """Reset VmHWM (Linux >= 4.0) so that it reports the peak of the next phase only."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def vm_hwm_bytes() -> int | None:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


class Sampler:
    """Samples this process's RSS and the 1-minute load average in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.peak_rss = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, rss_bytes())

    def _run(self) -> None:
        last_load = 0.0
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, rss_bytes())
            now = time.monotonic()
            if now - last_load >= 1.0:
                self.loads.append(os.getloadavg()[0])
                last_load = now


def postgres_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by these postmasters and all their backends (live and reaped)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    for pid in pids:
        if pid not in stats:
            continue
        fields = stats[pid]
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        for child in children.get(pid, []):
            total += sum(int(v) for v in stats[child][11:13])
    return total / tick


def wait_for_autovacuum(dsns: list[str], limit_s: float = 600.0) -> float:
    """Wait until no server runs an autovacuum worker (twice in a row), then checkpoint; returns the seconds.

    A load of millions of rows sets autovacuum off on every table it touched
    (insert-driven VACUUM and ANALYZE), for tens of seconds of CPU: timing the
    next phase meanwhile would charge it for the previous one's aftermath.
    """
    import psycopg

    start = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - start < limit_s:
        busy = 0
        for dsn in dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                busy += conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                ).fetchone()[0]
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(0.5)
    # Then write out what the previous phase left dirty, so that its write-back does not
    # land in the next timed phase either.
    for dsn in dsns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    os.sync()
    return time.monotonic() - start


def settled_cpu_seconds(pids: list[int], settle: float = 0.5) -> float:
    """:func:`postgres_cpu_seconds` once the backends of a finished phase have exited and been reaped.

    A backend's CPU is counted while it lives and, once its postmaster has reaped it, in the
    postmaster's children's time; read in between, it would be missed.
    """
    time.sleep(settle)
    return postgres_cpu_seconds(pids)


def postmaster_pids(cluster) -> list[int]:
    pids = []
    for _name, _role, server in cluster.servers():
        with suppress(OSError, ValueError, IndexError):
            pids.append(int((server.pgdata / "postmaster.pid").read_text().split()[0]))
    return pids


def code_version() -> dict:
    """Commit of the checkout and whether the loader's code differs from it (read-only git calls)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]

    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified": git("status", "--porcelain", "--", "loaders", "dms_db", "sharding").splitlines(),
    }


# ---------------------------------------------------------------- data


def simulate_to_parquet(rows: int, seed: int, directory: str) -> dict:
    """Child process: simulate a survey, write DiaObject and exactly ``rows`` DiaSources to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from loaders.simulate import SimulationConfig, simulate_survey

    started = time.monotonic()
    n_objects = max(2_000, math.ceil(rows * OBJECTS_PER_DIASOURCE * OBJECT_MARGIN))
    config = SimulationConfig(
        seed=seed,
        n_objects=n_objects,
        n_visits=900,
        variable_fraction=0.5,
        include_data_release=False,
        dia_forced_days=0.0,  # DiaForcedSource is not loaded here; skip most of it
    )
    survey = simulate_survey(config)
    simulated = time.monotonic() - started
    objects = survey.tables["apdb.DiaObject"]
    sources = survey.tables["apdb.DiaSource"]
    available = len(sources)
    sources = sources.iloc[:rows]
    out = Path(directory)
    paths = {}
    for name, frame in (("DiaObject", objects), ("DiaSource", sources)):
        path = out / f"apdb.{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        paths[name] = str(path)
    return {
        "n_objects_simulated": n_objects,
        "dia_objects": len(objects),
        "dia_sources_simulated": available,
        "dia_sources": len(sources),
        "simulate_seconds": round(simulated, 1),
        "generate_seconds": round(time.monotonic() - started, 1),
        "area_sq_deg": math.pi * config.radius_deg**2,
        "child_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "paths": paths,
    }


def pick_chunk_order(parquet: Path) -> tuple[int, float]:
    """HEALPix chunk order whose non-empty chunks hold on average closest (in ratio) to
    TARGET_ROWS_PER_CHUNK DiaSources, from the DiaSources' own positions (a DiaSource is stored in
    its DiaObject's chunk, a few arcseconds away at most)."""
    import numpy as np
    import pyarrow.parquet as pq

    from sharding.healpix import chunk_of_index, healpix_index

    positions = pq.read_table(parquet, columns=["ra", "dec"])
    index = healpix_index(positions["ra"].to_numpy(), positions["dec"].to_numpy())
    best = None
    for order in range(0, 13):
        per_chunk = index.size / np.unique(chunk_of_index(index, order)).size
        score = abs(math.log(per_chunk / TARGET_ROWS_PER_CHUNK))
        if best is None or score < best[0]:
            best = (score, order, per_chunk)
    assert best is not None
    return best[1], best[2]


# ---------------------------------------------------------------- phases


def partition_indexes(topology, schema_name: str, table_name: str) -> dict:
    """Partitions of a table on every worker, and how many carry each of the parent's indexes (attached).

    The loader builds the indexes of the partitions it creates after the COPY: this checks that the
    timed load left every index in place, attached to the parent's, as a load through indexed
    partitions would.
    """
    import psycopg

    partitions = complete = 0
    for worker in topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            rows = conn.execute(
                "SELECT c.oid, (SELECT count(*) FROM pg_index x JOIN pg_inherits hi ON hi.inhrelid = x.indexrelid "
                "WHERE x.indrelid = c.oid AND x.indisvalid), "
                "(SELECT count(*) FROM pg_index x WHERE x.indrelid = p.oid) "
                "FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = %s AND p.relname = %s",
                (schema_name, table_name),
            ).fetchall()
        partitions += len(rows)
        complete += sum(1 for _, attached, expected in rows if attached == expected > 0)
    return {"partitions": partitions, "with_every_parent_index": complete}


def load_phase(topology, target: str, path: Path, profile_path: Path | None) -> dict:
    """Time one loader call; RSS growth, client CPU and load average during it."""
    from loaders.bulk_load import load_inputs

    profiler = cProfile.Profile() if profile_path else None
    rss_before = rss_bytes()
    hwm_ok = reset_hwm()
    cpu_before = time.process_time()
    with Sampler() as sampler:
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        report = load_inputs(topology, target, [path])
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - start
    hwm = vm_hwm_bytes() if hwm_ok else None
    if profiler and profile_path:
        profiler.dump_stats(profile_path)
    peak = max(sampler.peak_rss, hwm or 0)
    return {
        "rows": report.rows,
        "chunks": report.chunks,
        "overlap_rows": report.overlap_rows,
        "seconds": seconds,
        "rows_per_s": report.rows / seconds,
        "client_cpu_seconds": time.process_time() - cpu_before,
        "rss_before_bytes": rss_before,
        "rss_peak_bytes": peak,
        "rss_growth_bytes": peak - rss_before,
        "load_avg_1min_max": max(sampler.loads, default=os.getloadavg()[0]),
        "load_avg_1min_mean": (sum(sampler.loads) / len(sampler.loads)) if sampler.loads else os.getloadavg()[0],
    }


def append_phase(topology, path: Path, rows: int, directory: Path) -> dict:
    """Time a nightly append: the first ``rows`` DiaSources again, with new ids, into the loaded ``apdb``.

    Their chunks have partitions already, so the rows go through the partitions' indexes, and
    the loader checks that their keys are new to the catalog.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from loaders.bulk_load import load_inputs

    table = pa.Table.from_batches([next(pq.ParquetFile(path).iter_batches(batch_size=rows))])
    ids = table["diaSourceId"]
    shift = pc.max(pq.read_table(path, columns=["diaSourceId"])["diaSourceId"]).as_py() - pc.min(ids).as_py() + 1
    table = table.set_column(table.schema.get_field_index("diaSourceId"), "diaSourceId", pc.add(ids, shift))
    appended = directory / "apdb.DiaSource.append.parquet"
    pq.write_table(table, appended)
    del table
    start = time.perf_counter()
    report = load_inputs(topology, "apdb.DiaSource", [appended])
    seconds = time.perf_counter() - start
    if report.rows != rows:
        raise RuntimeError(f"the append reported {report.rows} rows, expected {rows}")
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def baseline_phase(dsn: str, path: Path, indexed: bool = False) -> dict:
    """One raw binary COPY of the same (conformed, pre-encoded) rows into one plain table.

    Unindexed, or with ``indexed`` the indexes each loader partition has (unique diaSourceId,
    diaObjectId B-tree; not the healpix_index B-tree, since the plain table has no such column),
    created before the COPY.
    """
    import psycopg
    import pyarrow.parquet as pq
    from psycopg import sql
    from psycopg.copy import QueuedLibpqWriter

    from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
    from loaders.conform import ProblemCollector, conform_batch
    from loaders.copy_binary import COPY_HEADER, COPY_TRAILER, CopyColumn, encode_copy_binary
    from loaders.writer import copy_type_of

    table_schema = load_catalog_schema(shipped_schema_path("apdb")).table("DiaSource")
    problems = ProblemCollector()
    raw = pq.read_table(path)
    conformed = conform_batch(raw, table_schema, path.name, 0, problems)
    del raw
    if problems:
        raise RuntimeError(f"baseline rows do not conform: {problems.problems[:3]}")
    columns = [CopyColumn(f.name, copy_type_of(f.type)) for f in conformed.schema]
    start = time.perf_counter()
    # Batches of 10^5 rows encode fastest (see encode_copy_binary); one COPY stream of all of them.
    pieces = [
        encode_copy_binary(conformed.slice(lo, 100_000), columns, header=False, trailer=False)
        for lo in range(0, conformed.num_rows, 100_000)
    ]
    encode_seconds = time.perf_counter() - start
    payload_bytes = sum(len(p) for p in pieces) + len(COPY_HEADER) + len(COPY_TRAILER)
    rows = conformed.num_rows
    target = sql.Identifier(BASELINE_SCHEMA, "DiaSource")
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in columns
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BASELINE_SCHEMA)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, definition))
        if indexed:
            conn.execute(sql.SQL('CREATE UNIQUE INDEX ON {} ("diaSourceId")').format(target))
            conn.execute(sql.SQL('CREATE INDEX ON {} ("diaObjectId")').format(target))
        conn.commit()
        with Sampler() as sampler:
            start = time.perf_counter()
            # TRUNCATE in the COPY's transaction: with wal_level = minimal the COPY then
            # skips the write-ahead log, as the loader's new partitions do.
            conn.execute(sql.SQL("TRUNCATE {}").format(target))
            with conn.cursor() as cursor, cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.write(COPY_HEADER)
                for piece in pieces:
                    copy.write(piece)
                copy.write(COPY_TRAILER)
            conn.commit()
            seconds = time.perf_counter() - start
        loaded = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]
        if loaded != rows:
            raise RuntimeError(f"baseline loaded {loaded} rows, expected {rows}")
        table_bytes = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f'{BASELINE_SCHEMA}."DiaSource"',))
        table_bytes = table_bytes.fetchone()[0]
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(BASELINE_SCHEMA)))
        conn.commit()
    return {
        "rows": rows,
        "columns": len(columns),
        "payload_bytes": payload_bytes,
        "payload_bytes_per_row": payload_bytes / rows,
        "table_bytes": table_bytes,
        "encode_seconds": encode_seconds,
        "encode_rows_per_s": rows / encode_seconds,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "load_avg_1min_max": max(sampler.loads, default=os.getloadavg()[0]),
        "in_memory_arrow_bytes": conformed.nbytes,
    }


def print_profile(path: Path, top: int = 10) -> str:
    import io

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top + 15)
    return out.getvalue()


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="DiaSource rows to load (default 5 000 000)")
    parser.add_argument("--workers", type=int, default=4, help="worker servers of the private cluster")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="loader runs and baseline COPY runs, alternating (default 3); the ratio is of their medians",
    )
    parser.add_argument(
        "--append-rows",
        type=int,
        default=1_000_000,
        help="then append this many DiaSources (at most --rows) with new ids into the first run's partitions (0: skip)",
    )
    parser.add_argument(
        "--indexed-baseline",
        action="store_true",
        help="also COPY into the plain table carrying the loader partitions' indexes (slow)",
    )
    parser.add_argument(
        "--wal-level",
        choices=("minimal", "replica"),
        default="minimal",
        help="wal_level of every server, the baseline's included (default: the local cluster's, minimal)",
    )
    parser.add_argument("--profile", action="store_true", help="run the loader phase under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory (debugging)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "ingest.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if not 0 <= args.append_rows <= args.rows:
        parser.error(f"--append-rows must be between 0 and --rows ({args.rows:,}), got {args.append_rows:,}")

    from dms_db.catalog_service import deploy_schema_file
    from dms_db.cluster import bring_up
    from dms_db.config import DmsConfig, LocalClusterConfig
    from dms_db.local_cluster import LocalCluster
    from dms_db.ports import free_port_block
    from loaders.bulk_load import load_inputs

    wall = time.monotonic()
    load_start = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="dms-bench-ingest-"))
    os.chmod(home, 0o755)
    data_dir = home / "cluster"
    config = DmsConfig(
        local=LocalClusterConfig(
            workers=args.workers,
            data_dir=data_dir,
            base_port=free_port_block(args.workers + 1),
            fsync=False,
            wal_level=args.wal_level,
        )
    )
    cluster = LocalCluster(config)
    results: dict = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.ingest.run", *(argv or sys.argv[1:])]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_avg_at_start": load_start,
        "workers": args.workers,
        "fsync": False,
        "wal_level": args.wal_level,
        "code": code_version(),
    }
    try:
        print(
            f"simulating ~{args.rows:,} DiaSources (child process) while the cluster starts in {home} ...", flush=True
        )
        with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:
            future = pool.submit(simulate_to_parquet, args.rows, args.seed, str(home))
            start = time.perf_counter()
            topology = bring_up(config)
            results["bring_up_seconds"] = time.perf_counter() - start
            data = future.result()
        results["data"] = data
        paths = {name: Path(p) for name, p in data["paths"].items()}
        rows = data["dia_sources"]
        if rows < args.rows:
            print(f"warning: the simulation gave {rows:,} DiaSources, fewer than --rows {args.rows:,}")
        order, per_chunk = pick_chunk_order(paths["DiaSource"])
        results["chunk_order"] = order
        results["expected_rows_per_chunk"] = per_chunk
        print(
            f"data: {data['dia_objects']:,} DiaObjects, {rows:,} DiaSources "
            f"(simulated in {data['simulate_seconds']} s); chunk order {order} "
            f"(~{per_chunk:,.0f} DiaSources per non-empty chunk)",
            flush=True,
        )
        results["parquet_bytes"] = paths["DiaSource"].stat().st_size
        pids = postmaster_pids(cluster)
        profile_path = RESULTS_DIR / "ingest-loader.prof" if args.profile else None
        if profile_path:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        dsns = [node.dsn for node in topology.nodes]
        loader_runs, baseline_runs = [], []
        to_profile = profile_path
        for run in range(1, args.repeats + 1):
            # Each loader run loads into a catalog of its own (the same schema deployed again
            # under another name), so that every run loads into empty tables; the earlier runs'
            # rows stay on the workers.
            schema = "apdb" if run == 1 else f"apdb_run{run}"
            deploy_schema_file(config, "apdb", name=schema, chunk_order=order)
            start = time.perf_counter()
            objects = load_inputs(topology, f"{schema}.DiaObject", [paths["DiaObject"]])
            if run == 1:
                results["dia_object_load"] = {
                    "rows": objects.rows,
                    "overlap_rows": objects.overlap_rows,
                    "chunks": objects.chunks,
                    "seconds": time.perf_counter() - start,
                }
                print(
                    f"DiaObjects loaded: {objects.rows:,} rows (+{objects.overlap_rows:,} overlap) in "
                    f"{results['dia_object_load']['seconds']:.1f} s, {objects.chunks} chunks",
                    flush=True,
                )
            wait_for_autovacuum(dsns)
            server_cpu = settled_cpu_seconds(pids)
            print(f"run {run}: timing the loader ...", flush=True)
            loader = load_phase(topology, f"{schema}.DiaSource", paths["DiaSource"], to_profile)
            loader["server_cpu_seconds"] = settled_cpu_seconds(pids) - server_cpu
            loader["profiled"] = bool(to_profile)
            to_profile = None  # the first run only
            if loader["rows"] != rows:
                raise RuntimeError(f"the loader reported {loader['rows']} rows, expected {rows}")
            loader["partition_indexes"] = partition_indexes(topology, schema, "DiaSource")
            if loader["partition_indexes"]["with_every_parent_index"] != loader["partition_indexes"]["partitions"]:
                raise RuntimeError(f"partitions lack indexes after the load: {loader['partition_indexes']}")
            loader_runs.append(loader)
            print(f"run {run}: loader {loader['seconds']:.2f} s; timing the baseline ...", flush=True)
            wait_for_autovacuum(dsns)
            server_cpu = settled_cpu_seconds(pids)
            baseline = baseline_phase(topology.coordinator.dsn, paths["DiaSource"])
            baseline["server_cpu_seconds"] = settled_cpu_seconds(pids) - server_cpu
            baseline_runs.append(baseline)
            print(f"run {run}: baseline {baseline['seconds']:.2f} s", flush=True)
        loader, baseline = loader_runs[0], baseline_runs[0]
        loader_seconds = [run["seconds"] for run in loader_runs]
        baseline_seconds = [run["seconds"] for run in baseline_runs]
        results["loader_runs"], results["baseline_runs"] = loader_runs, baseline_runs
        results["loader_seconds_each"], results["baseline_seconds_each"] = loader_seconds, baseline_seconds
        results["ratio_of_medians"] = statistics.median(baseline_seconds) / statistics.median(loader_seconds)
        results["ratio_of_best_runs"] = min(baseline_seconds) / min(loader_seconds)
        if args.append_rows > 0:
            print("timing an append into the existing partitions ...", flush=True)
            wait_for_autovacuum(dsns)
            appended = min(args.append_rows, rows)  # fewer only when the simulation gave fewer (warned above)
            results["append"] = append_phase(topology, paths["DiaSource"], appended, home)
        if args.indexed_baseline:
            print("timing the indexed baseline ...", flush=True)
            server_cpu = settled_cpu_seconds(pids)
            indexed = baseline_phase(topology.coordinator.dsn, paths["DiaSource"], indexed=True)
            indexed["server_cpu_seconds"] = settled_cpu_seconds(pids) - server_cpu
            results["baseline_indexed"] = indexed
        results["peak_rss_bytes"] = peak_rss_bytes()
        results["children_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        results["load_avg_at_end"] = os.getloadavg()
        results["wall_seconds"] = time.monotonic() - wall

        mib = 1 << 20
        print()
        print(f"command:  {results['command']}")
        print(
            f"data:     {rows:,} DiaSource rows; Parquet {results['parquet_bytes'] / mib:,.0f} MiB; "
            f"binary COPY payload {baseline['payload_bytes'] / mib:,.0f} MiB "
            f"({baseline['payload_bytes_per_row']:.0f} B/row, {baseline['columns']} columns); "
            f"in-memory Arrow {baseline['in_memory_arrow_bytes'] / mib:,.0f} MiB; "
            f"plain table on disk {baseline['table_bytes'] / mib:,.0f} MiB"
        )
        print(
            f"cluster:  {args.workers} workers, chunk order {order}, {loader['chunks']} DiaSource chunks, fsync off, "
            f"wal_level {args.wal_level}; "
            f"after the load {loader['partition_indexes']['with_every_parent_index']} of "
            f"{loader['partition_indexes']['partitions']} partitions carry every index of the parent"
        )
        median_loader = statistics.median(loader_seconds)
        median_baseline = statistics.median(baseline_seconds)
        print(
            f"loader:   {rows / median_loader:12,.0f} rows/s  (median of {len(loader_runs)} runs: "
            f"{', '.join(f'{t:.2f}' for t in loader_seconds)} s; first run: client CPU "
            f"{loader['client_cpu_seconds']:.1f} s, servers' CPU {loader['server_cpu_seconds']:.1f} s"
            f"{'; under cProfile' if loader['profiled'] else ''})"
        )
        print(
            f"baseline: {rows / median_baseline:12,.0f} rows/s  (median of {len(baseline_runs)} raw binary COPYs "
            f"into one unindexed table: {', '.join(f'{t:.2f}' for t in baseline_seconds)} s; first run: server "
            f"CPU {baseline['server_cpu_seconds']:.1f} s; pre-encoding took {baseline['encode_seconds']:.1f} s "
            f"= {baseline['encode_rows_per_s']:,.0f} rows/s)"
        )
        print(
            f"ratio:    loader / baseline = {results['ratio_of_medians']:.2f} (medians); "
            f"{results['ratio_of_best_runs']:.2f} (best run of each)"
        )
        if "append" in results:
            append = results["append"]
            print(
                f"append:   {append['rows_per_s']:12,.0f} rows/s  ({append['rows']:,} DiaSources with new ids into "
                f"the partitions of the first run's {rows:,}, every index kept up to date: {append['seconds']:.1f} s)"
            )
        if "baseline_indexed" in results:
            indexed = results["baseline_indexed"]
            print(
                f"indexed baseline: {indexed['rows_per_s']:12,.0f} rows/s  ({indexed['seconds']:.1f} s binary COPY "
                "into "
                f"one table with unique key, diaObjectId and GiST position indexes; server CPU "
                f"{indexed['server_cpu_seconds']:.1f} s); loader / indexed = "
                f"{loader['rows_per_s'] / indexed['rows_per_s']:.2f}"
            )
        print(
            f"memory:   ru_maxrss {results['peak_rss_bytes'] / mib:,.0f} MiB (whole process, baseline included); "
            f"first loader run: RSS {loader['rss_before_bytes'] / mib:,.0f} -> peak "
            f"{loader['rss_peak_bytes'] / mib:,.0f} MiB (+{loader['rss_growth_bytes'] / mib:,.0f} MiB); "
            f"largest growth of any run +{max(r['rss_growth_bytes'] for r in loader_runs) / mib:,.0f} MiB; "
            "simulator child peak "
            f"{data['child_peak_rss_bytes'] / mib:,.0f} MiB"
        )
        print(
            f"load avg: start {load_start[0]:.2f}; "
            f"loader max {max(r['load_avg_1min_max'] for r in loader_runs):.2f}, "
            f"baseline max {max(r['load_avg_1min_max'] for r in baseline_runs):.2f}; "
            f"end {results['load_avg_at_end'][0]:.2f} "
            f"({os.cpu_count()} CPUs)"
        )
        if profile_path:
            text = print_profile(profile_path)
            results["profile_top"] = text
            print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"figures written to {args.output}")
        return 0
    finally:
        try:
            cluster.stop()
        finally:
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
