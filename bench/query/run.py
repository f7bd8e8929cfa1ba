"""Query benchmark: the sharded engine on N local workers against one unsharded PostgreSQL.

One command::

    .venv/bin/python -m bench.query.run [--dia-sources 5000000 --dia-objects 1000000 --repeat N]

In one run it starts a private local cluster (coordinator + ``--workers``, fsync off) and one
plain server with the workers' settings, generates DiaObjects and DiaSources
(:mod:`bench.query.data`), loads them into the cluster with the real loader
(``loaders.bulk_load.load_inputs``) and into the plain server by binary COPY
(:mod:`bench.query.baseline`), ``VACUUM ANALYZE``s both, then times the issue's queries
(:mod:`bench.query.queries`) through ``QueryEngine`` and as translated SQL on the plain server,
checking that both sides return the same rows. It prints engine and baseline p50/p95 and their
ratio per query, data sizes and the load average, and writes ``bench/results/query.json``.
The servers are stopped and their directory deleted at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow.parquet as pq

from bench.ingest.run import RESULTS_DIR, Sampler, code_version, pick_chunk_order
from bench.query.baseline import baseline_bytes, baseline_server, fill_baseline, start_baseline
from bench.query.data import BenchData, generate
from bench.query.queries import CaseResult, build_cases, run_case
from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from dms_db.cluster import bring_up
from dms_db.config import DmsConfig, LocalClusterConfig
from dms_db.local_cluster import LocalCluster
from dms_db.ports import free_port_block
from dms_db.topology import Topology
from loaders.bulk_load import load_inputs
from sharding.coordinator import QueryEngine

MIB = 1 << 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dia-sources", type=int, default=5_000_000, help="DiaSource rows (default 5 000 000)")
    parser.add_argument("--dia-objects", type=int, default=1_000_000, help="DiaObject rows (default 1 000 000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of every query variant on each side")
    parser.add_argument("--centres", type=int, default=5, help="cone centres per cone size")
    parser.add_argument("--ids", type=int, default=10, help="objects for the id look-up and the light curve")
    parser.add_argument("--workers", type=int, default=4, help="worker servers of the private cluster")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory (debugging)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "query.json")
    return parser.parse_args(argv)


def choose_chunk_order(data: BenchData, directory: Path) -> tuple[int, float]:
    """The ingest benchmark's chunk order (~10^5 DiaSources per chunk), from the DiaSources' positions.

    ``bench.ingest.run.pick_chunk_order`` reads positions from Parquet, so they are written
    to a small file first.
    """
    path = directory / "positions.parquet"
    pq.write_table(data.dia_sources.select(["ra", "dec"]), path)
    try:
        return pick_chunk_order(path)
    finally:
        path.unlink()


def load_cluster(topology: Topology, data: BenchData) -> dict[str, Any]:
    """Load DiaObject, then DiaSource, with the real loader; then VACUUM ANALYZE every node.

    The coordinator too: without statistics on ``dms.director_index`` (the loader does not
    ANALYZE it, autovacuum does, a minute or so later) PostgreSQL probes its primary key with
    the schema and table names alone and filters every id of the table, which makes each id
    look-up of the first minute after a load cost tens of milliseconds.
    """
    figures: dict[str, Any] = {}
    for name, table in (("DiaObject", data.dia_objects), ("DiaSource", data.dia_sources)):
        start = time.perf_counter()
        report = load_inputs(topology, f"apdb.{name}", [table], replication=1)
        seconds = time.perf_counter() - start
        figures[name] = {"rows": report.rows, "chunks": report.chunks, "seconds": seconds}
        print(f"  {name}: {report.rows:,} rows into {report.chunks} chunks in {seconds:.1f} s", flush=True)
        if report.rows != table.num_rows:
            raise RuntimeError(f"the loader loaded {report.rows} {name} rows, expected {table.num_rows}")
    for node in (topology.coordinator, *topology.workers):
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
    return figures


def cluster_bytes(topology: Topology, table_name: str) -> int:
    """On-disk size of a partitioned table (every chunk partition, with indexes) over all workers."""
    total = 0
    for worker in topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree("
                "format('%%I.%%I', 'apdb'::text, %s::text)::regclass)",
                (table_name,),
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = (
        f"{'query':<26} {'rows':>8} {'n':>4}  {'engine p50':>10} {'p95':>8}  {'baseline p50':>12} {'p95':>8}"
        f"  {'ratio':>6} {'target':>7}  {'transl.':>7} {'first':>7}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        flag = "ok" if s["met"] else "MISS"
        print(
            f"{s['query']:<26} {s['rows_mean']:>8,.0f} {s['samples']:>4}  {s['engine_p50_ms']:>8.2f}ms"
            f" {s['engine_p95_ms']:>6.2f}ms  {s['baseline_p50_ms']:>10.2f}ms {s['baseline_p95_ms']:>6.2f}ms"
            f"  {s['ratio_p50']:>6.2f} {'<=' + format(s['target'], 'g'):>5} {flag:<4} {s['translate_p50_ms']:>5.2f}ms"
            f" {s['first_run_p50_ms']:>5.2f}ms"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.query.run", *(argv or sys.argv[1:])]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "workers": args.workers,
        "fsync": False,
        "code": code_version(),
    }
    home = Path(tempfile.mkdtemp(prefix="dms-bench-query-"))
    os.chmod(home, 0o755)  # the unprivileged server account must reach its data directories
    ports = free_port_block(args.workers + 2)
    config = DmsConfig(
        local=LocalClusterConfig(workers=args.workers, data_dir=home / "cluster", base_port=ports, fsync=False)
    )
    cluster = LocalCluster(config)
    baseline = baseline_server(cluster, home / "baseline", ports + args.workers + 1)
    try:
        print(f"generating {args.dia_objects:,} DiaObjects and {args.dia_sources:,} DiaSources ...", flush=True)
        with ThreadPoolExecutor(1) as pool:
            servers = pool.submit(lambda: (bring_up(config), start_baseline(baseline)))
            start = time.perf_counter()
            data = generate(args.dia_objects, args.dia_sources, seed=args.seed)
            results["generate_seconds"] = time.perf_counter() - start
            topology, baseline_dsn = servers.result()
        order, per_chunk = choose_chunk_order(data, home)
        results["data"] = {
            "dia_objects": data.dia_objects.num_rows,
            "dia_sources": data.dia_sources.num_rows,
            "area": {**dataclasses.asdict(data.area), "sq_deg": data.area.area_sq_deg},
            "sources_per_object_p50_p99_max": np.percentile(data.sources_per_object, [50, 99, 100]).tolist(),
            "chunk_order": order,
            "dia_sources_per_chunk": per_chunk,
        }
        print(
            f"data: {data.area.area_sq_deg:.0f} sq deg box {data.area}; chunk order {order} "
            f"(~{per_chunk:,.0f} DiaSources per non-empty chunk); loading the cluster ...",
            flush=True,
        )
        deploy_schema_file(config, "apdb", chunk_order=order)
        results["cluster_load"] = load_cluster(topology, data)
        print("loading the baseline ...", flush=True)
        start = time.perf_counter()
        catalog_schema = load_catalog_schema(shipped_schema_path("apdb"))
        fill_baseline(baseline_dsn, catalog_schema, {"DiaObject": data.dia_objects, "DiaSource": data.dia_sources})
        results["baseline_load_seconds"] = time.perf_counter() - start
        sizes = {
            name: {
                "cluster_bytes": cluster_bytes(topology, name),
                "baseline_bytes": baseline_bytes(baseline_dsn, "apdb", name),
            }
            for name in ("DiaObject", "DiaSource")
        }
        results["sizes"] = sizes

        cases = build_cases(data, np.random.default_rng(args.seed + 1), args.centres, args.ids)
        del data  # the rows now live in the servers; keep the client small while timing
        summaries: list[dict[str, Any]] = []
        print(f"timing {len(cases)} queries, {args.repeat} runs per variant on each side ...", flush=True)
        with (
            QueryEngine(topology) as engine,
            psycopg.connect(baseline_dsn, autocommit=True) as conn,
            Sampler(interval=1.0) as sampler,
        ):
            conn.execute("SET default_transaction_read_only = on")
            catalog = engine.catalog().tables
            for case in cases:
                result: CaseResult = run_case(engine, conn, catalog, case, args.repeat)
                summaries.append(result.summary())
                s = summaries[-1]
                print(
                    f"  {case.name}: engine {s['engine_p50_ms']:.1f} ms, baseline {s['baseline_p50_ms']:.1f} ms, "
                    f"ratio {s['ratio_p50']:.2f} (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        results["queries"] = summaries
        loads = sampler.loads or [os.getloadavg()[0]]
        results["load_avg_during_queries"] = {"min": min(loads), "mean": float(np.mean(loads)), "max": max(loads)}
        results["load_avg_at_end"] = os.getloadavg()
        results["wall_seconds"] = time.monotonic() - wall

        print()
        print(f"command:  {results['command']}")
        d = results["data"]
        print(
            f"data:     {d['dia_objects']:,} DiaObjects, {d['dia_sources']:,} DiaSources over "
            f"{d['area']['sq_deg']:.0f} sq deg (RA {d['area']['ra_min']:g}..{d['area']['ra_max']:g}, "
            f"Dec {d['area']['dec_min']:g}..{d['area']['dec_max']:g}); DiaSources per object p50/p99/max "
            f"{'/'.join(f'{v:g}' for v in d['sources_per_object_p50_p99_max'])}"
        )
        for name, size in sizes.items():
            print(
                f"on disk:  {name}: cluster {size['cluster_bytes'] / MIB:,.0f} MiB over {args.workers} workers, "
                f"baseline {size['baseline_bytes'] / MIB:,.0f} MiB"
            )
        print(
            f"cluster:  {args.workers} workers, chunk order {order}, "
            f"{results['cluster_load']['DiaSource']['chunks']} DiaSource chunks, fsync off; "
            f"baseline: one server, same settings"
        )
        loads = results["load_avg_during_queries"]
        print(
            f"load avg: start {results['load_avg_at_start'][0]:.2f}; during queries min {loads['min']:.2f} "
            f"mean {loads['mean']:.2f} max {loads['max']:.2f}; end {results['load_avg_at_end'][0]:.2f} "
            f"({os.cpu_count()} CPUs)"
        )
        print()
        print_table(summaries)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.output}; wall time {results['wall_seconds']:.0f} s")
        return 0
    finally:
        try:
            baseline.stop()
        finally:
            try:
                cluster.stop()
            finally:
                if not args.keep:
                    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
