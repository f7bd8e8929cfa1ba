"""TAP benchmark: pyvo cone searches through the HTTP service against the same query without HTTP, in one run.

One command::

    .venv/bin/python -m bench.tap.run [--dia-objects 1000000 --queries 200 --clients 20 --concurrent-queries 400]

In one run it starts a private local cluster (coordinator + ``--workers``, fsync off) and one
plain server with the workers' settings, generates DiaObjects with the query benchmark's
generator (:mod:`bench.query.data`), loads them into the cluster with the real loader and into
the plain server by binary COPY (:mod:`bench.query.baseline`), ``VACUUM ANALYZE``s both, and
starts the TAP service as its own process (``dms-db serve``, :mod:`tests.api.serve_subprocess`).
It then runs cone searches at random positions (radius 1-10 arcmin) on three sides:

* ``TAP``: ``pyvo.dal.TAPService(url).run_sync(adql)`` (HTTP, VOTable BINARY2 parsed by pyvo);
* ``engine``: the same ADQL through ``QueryEngine.query`` in this process (the service's engine
  without HTTP), every row fetched;
* ``baseline``: the ADQL translated to SQL (``adql.translate``) run by psycopg on the plain
  server holding the same rows, every row fetched.

First ``--queries`` cones one at a time, the three sides in rotating order for each cone
(p50, p95, queries/s), then ``--concurrent-queries`` cones from ``--clients`` threads per
side, one side after the other (p50, p95 and throughput). The first ``--check`` cones are
compared row for row (sets of ``diaObjectId``) on all three sides before anything is timed,
and every timed run's row count is checked again: a difference aborts the run. It prints the
figures with the ratios TAP/engine and TAP/baseline, data sizes and the load average, writes
``bench/results/tap.json``, and stops every server whatever happens. Nothing is asserted about
the timings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyvo
import requests

from adql import translate
from bench.ingest.run import RESULTS_DIR, Sampler, code_version
from bench.query.baseline import baseline_bytes, baseline_server, fill_baseline, start_baseline
from bench.query.data import AREA, generate
from bench.query.queries import CONE_COLUMNS, WrongAnswerError
from bench.query.run import cluster_bytes
from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from dms_db.cluster import bring_up
from dms_db.config import DmsConfig, LocalClusterConfig, ServiceConfig
from dms_db.local_cluster import LocalCluster
from dms_db.ports import free_port_block
from dms_db.topology import Topology
from loaders.bulk_load import load_inputs
from sharding.coordinator import QueryEngine
from tests.api.serve_subprocess import service_process

MIB = 1 << 20
SIDES = ("TAP", "engine", "baseline")
SIDE_NAMES = {
    "TAP": "pyvo -> TAP service (HTTP)",
    "engine": "QueryEngine, no HTTP",
    "baseline": "psycopg -> one PostgreSQL",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dia-objects", type=int, default=1_000_000, help="DiaObject rows (default 1 000 000)")
    parser.add_argument("--queries", type=int, default=200, help="cones run one at a time on each side")
    parser.add_argument("--concurrent-queries", type=int, default=400, help="cones run by the clients on each side")
    parser.add_argument("--clients", type=int, default=20, help="concurrent client threads")
    parser.add_argument("--check", type=int, default=20, help="cones compared row for row before timing")
    parser.add_argument("--radius-min", type=float, default=1.0, help="smallest cone radius, arcmin")
    parser.add_argument("--radius-max", type=float, default=10.0, help="largest cone radius, arcmin")
    parser.add_argument("--workers", type=int, default=4, help="worker servers of the private cluster")
    parser.add_argument("--chunk-order", type=int, default=4, help="HEALPix chunk order (the query bench's: 4)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory (debugging)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "tap.json")
    return parser.parse_args(argv)


def cone_queries(n: int, rng: np.random.Generator, radius_arcmin: tuple[float, float]) -> list[str]:
    """ADQL cone searches on DiaObject at uniform random centres at least 1 deg inside the data's box."""
    ra, dec = AREA.uniform(rng, n, margin_deg=1.0)
    radius = rng.uniform(*radius_arcmin, n) / 60.0
    return [
        # ADQL text, as a user sends it, from our own numbers (S608 is about SQL)
        f"SELECT {CONE_COLUMNS['DiaObject']} FROM apdb.DiaObject "  # noqa: S608
        f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {r:.6f}, {d:.6f}, {rad:.8f}))"
        for r, d, rad in zip(ra, dec, radius, strict=True)
    ]


class Clients:
    """One client per thread and side: a pyvo service with its own HTTP session, a psycopg connection."""

    def __init__(self, tap_url: str, engine: QueryEngine, baseline_dsn: str, sql_of: dict[str, str]) -> None:
        self.tap_url = tap_url
        self.engine = engine
        self.baseline_dsn = baseline_dsn
        self.sql_of = sql_of
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def _tap(self) -> pyvo.dal.TAPService:
        if not hasattr(self._local, "tap"):
            session = requests.Session()
            self._local.tap = pyvo.dal.TAPService(self.tap_url, session=session)
            with self._lock:
                self._opened.append(session)
        return self._local.tap

    def _conn(self) -> psycopg.Connection:
        if not hasattr(self._local, "conn"):
            conn = psycopg.connect(self.baseline_dsn, autocommit=True)
            conn.execute("SET default_transaction_read_only = on")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return self._local.conn

    def ids(self, side: str, adql_text: str) -> list[int]:
        """The ``diaObjectId`` of every row one side returns (untimed, for the check)."""
        if side == "TAP":
            return [int(i) for i in self._tap().run_sync(adql_text).to_table()["diaObjectId"]]
        if side == "engine":
            with self.engine.query(adql_text) as result:
                return [int(row[0]) for row in result]
        with self._conn().cursor() as cursor:
            cursor.execute(self.sql_of[adql_text])
            return [int(row[0]) for row in cursor.fetchall()]

    def timed(self, side: str, adql_text: str) -> tuple[float, int]:
        """Seconds for one side to answer and deliver every row, and the row count."""
        start = time.perf_counter()
        if side == "TAP":
            rows = len(self._tap().run_sync(adql_text))
        elif side == "engine":
            with self.engine.query(adql_text) as result:
                rows = len(list(result))
        else:
            with self._conn().cursor() as cursor:
                cursor.execute(self.sql_of[adql_text])
                rows = len(cursor.fetchall())
        return time.perf_counter() - start, rows

    def close(self) -> None:
        for opened in self._opened:
            opened.close()


@dataclass
class Phase:
    """Latencies (seconds) of one side in one mode, and the wall time they took together."""

    side: str
    mode: str
    latencies: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    wall: float = 0.0
    loads: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        p50, p95 = np.percentile(self.latencies, [50, 95])
        return {
            "side": self.side,
            "mode": self.mode,
            "queries": len(self.latencies),
            "rows_mean": float(np.mean(self.rows)),
            "p50_ms": 1e3 * float(p50),
            "p95_ms": 1e3 * float(p95),
            "queries_per_s": len(self.latencies) / self.wall,
            "wall_s": self.wall,
            "load_avg_mean": float(np.mean(self.loads)) if self.loads else os.getloadavg()[0],
        }


def check_answers(clients: Clients, queries: list[str], expected_rows: dict[str, int]) -> None:
    """Every side returns the same set of rows for each of ``queries`` (also warms every side up)."""
    for adql_text in queries:
        answers = {side: clients.ids(side, adql_text) for side in SIDES}
        reference = sorted(answers["baseline"])
        for side, ids in answers.items():
            if sorted(ids) != reference:
                raise WrongAnswerError(f"{side} returned {len(ids)} rows, the baseline {len(reference)}\n{adql_text}")
        expected_rows[adql_text] = len(reference)


def verify_count(side: str, adql_text: str, rows: int, expected_rows: dict[str, int]) -> None:
    expected = expected_rows.get(adql_text)
    if expected is not None and rows != expected:
        raise WrongAnswerError(f"{side} returned {rows} rows, the checked answer has {expected}\n{adql_text}")


def run_sequential(clients: Clients, queries: list[str], expected_rows: dict[str, int]) -> dict[str, Phase]:
    """Each cone on every side, one at a time, the sides' order rotating from cone to cone."""
    phases = {side: Phase(side, "sequential") for side in SIDES}
    with Sampler(interval=1.0) as sampler:
        for index, adql_text in enumerate(queries):
            for side in SIDES[index % 3 :] + SIDES[: index % 3]:
                seconds, rows = clients.timed(side, adql_text)
                verify_count(side, adql_text, rows, expected_rows)
                expected_rows.setdefault(adql_text, rows)
                phases[side].latencies.append(seconds)
                phases[side].rows.append(rows)
    for phase in phases.values():
        phase.wall = sum(phase.latencies)
        phase.loads = sampler.loads
    return phases


def run_concurrent(
    clients: Clients, side: str, queries: list[str], n_clients: int, expected_rows: dict[str, int]
) -> Phase:
    """``queries`` on one side from ``n_clients`` threads, each taking the next cone as soon as it is free."""
    phase = Phase(side, f"{n_clients} clients")
    counter = itertools.count()
    lock = threading.Lock()

    def client() -> None:
        while (index := next(counter)) < len(queries):
            seconds, rows = clients.timed(side, queries[index])
            with lock:
                verify_count(side, queries[index], rows, expected_rows)
                expected_rows.setdefault(queries[index], rows)
                phase.latencies.append(seconds)
                phase.rows.append(rows)

    with Sampler(interval=1.0) as sampler, ThreadPoolExecutor(n_clients) as pool:
        start = time.perf_counter()
        for future in [pool.submit(client) for _ in range(n_clients)]:
            future.result()
        phase.wall = time.perf_counter() - start
    phase.loads = sampler.loads
    return phase


def load_objects(topology: Topology, table: Any) -> dict[str, Any]:
    """DiaObject through the real loader, then VACUUM ANALYZE on every node."""
    start = time.perf_counter()
    report = load_inputs(topology, "apdb.DiaObject", [table], replication=1)
    seconds = time.perf_counter() - start
    if report.rows != table.num_rows:
        raise RuntimeError(f"the loader loaded {report.rows} DiaObject rows, expected {table.num_rows}")
    print(f"  DiaObject: {report.rows:,} rows into {report.chunks} chunks in {seconds:.1f} s", flush=True)
    for node in (topology.coordinator, *topology.workers):
        with psycopg.connect(node.dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
    return {"rows": report.rows, "chunks": report.chunks, "seconds": seconds}


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = f"{'side':<28} {'mode':<12} {'n':>5} {'rows':>6}  {'p50':>8} {'p95':>8}  {'q/s':>7}  {'load':>5}"
    print(header)
    print("-" * len(header))
    for s in summaries:
        print(
            f"{SIDE_NAMES[s['side']]:<28} {s['mode']:<12} {s['queries']:>5} {s['rows_mean']:>6.0f}  "
            f"{s['p50_ms']:>6.1f}ms {s['p95_ms']:>6.1f}ms  {s['queries_per_s']:>7.1f}  {s['load_avg_mean']:>5.2f}"
        )


def ratios(summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """TAP against each other side, per mode: p50 and p95 ratios, throughput ratio."""
    by_key = {(s["side"], s["mode"]): s for s in summaries}
    result = {}
    for mode in dict.fromkeys(s["mode"] for s in summaries):
        tap = by_key[("TAP", mode)]
        for other in ("engine", "baseline"):
            o = by_key[(other, mode)]
            result[f"{mode}: TAP/{other}"] = {
                "p50": tap["p50_ms"] / o["p50_ms"],
                "p95": tap["p95_ms"] / o["p95_ms"],
                "throughput": tap["queries_per_s"] / o["queries_per_s"],
            }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.tap.run", *(argv or sys.argv[1:])]),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "workers": args.workers,
        "clients": args.clients,
        "fsync": False,
        "code": code_version(),
    }
    home = Path(tempfile.mkdtemp(prefix="dms-bench-tap-"))
    os.chmod(home, 0o755)  # the unprivileged server account must reach its data directories
    ports = free_port_block(args.workers + 2)
    config = DmsConfig(
        local=LocalClusterConfig(workers=args.workers, data_dir=home / "cluster", base_port=ports, fsync=False)
    )
    cluster = LocalCluster(config)
    baseline = baseline_server(cluster, home / "baseline", ports + args.workers + 1)
    try:
        print(f"generating {args.dia_objects:,} DiaObjects ...", flush=True)
        with ThreadPoolExecutor(1) as pool:
            servers = pool.submit(lambda: (bring_up(config), start_baseline(baseline)))
            data = generate(args.dia_objects, args.dia_objects, seed=args.seed)
            topology, baseline_dsn = servers.result()
        objects = data.dia_objects
        del data
        print(f"data: {objects.num_rows:,} DiaObjects; chunk order {args.chunk_order}; loading ...", flush=True)
        deploy_schema_file(config, "apdb", chunk_order=args.chunk_order)
        results["cluster_load"] = load_objects(topology, objects)
        fill_baseline(baseline_dsn, load_catalog_schema(shipped_schema_path("apdb")), {"DiaObject": objects})
        results["data"] = {
            "dia_objects": objects.num_rows,
            "chunk_order": args.chunk_order,
            "cluster_bytes": cluster_bytes(topology, "DiaObject"),
            "baseline_bytes": baseline_bytes(baseline_dsn, "apdb", "DiaObject"),
        }
        del objects

        rng = np.random.default_rng(args.seed + 1)
        sequential = cone_queries(args.queries, rng, (args.radius_min, args.radius_max))
        concurrent = cone_queries(args.concurrent_queries, rng, (args.radius_min, args.radius_max))
        service_config = DmsConfig(
            coordinator_dsn=topology.coordinator.dsn,
            worker_dsns=[worker.dsn for worker in topology.workers],
            service=ServiceConfig(results_dir=home / "tap-results"),
        )
        (home / "tap-results").mkdir()
        with (
            service_process(service_config, home) as service,
            QueryEngine(topology) as engine,
        ):
            catalog = engine.catalog().tables
            sql_of = {q: translate(q, catalog).sql for q in sequential + concurrent}
            clients = Clients(service.url, engine, baseline_dsn, sql_of)
            try:
                expected_rows: dict[str, int] = {}
                print(f"checking {args.check} cones on the three sides ...", flush=True)
                check_answers(clients, sequential[: args.check], expected_rows)
                print(f"timing {len(sequential)} cones one at a time on each side ...", flush=True)
                phases = list(run_sequential(clients, sequential, expected_rows).values())
                for side in SIDES:
                    print(f"timing {len(concurrent)} cones from {args.clients} clients: {side} ...", flush=True)
                    phases.append(run_concurrent(clients, side, concurrent, args.clients, expected_rows))
            finally:
                clients.close()
            results["service_rss_mib"] = service.rss_bytes() / MIB
        summaries = [phase.summary() for phase in phases]
        results["phases"] = summaries
        results["ratios"] = ratios(summaries)
        results["load_avg_at_end"] = os.getloadavg()
        results["wall_seconds"] = time.monotonic() - wall

        print()
        print(f"command:  {results['command']}")
        d = results["data"]
        print(
            f"data:     {d['dia_objects']:,} DiaObjects over 299 sq deg; cones of {args.radius_min:g}-"
            f"{args.radius_max:g} arcmin at uniform random centres; on disk: cluster {d['cluster_bytes'] / MIB:,.0f} "
            f"MiB over {args.workers} workers, baseline {d['baseline_bytes'] / MIB:,.0f} MiB"
        )
        print(
            f"cluster:  {args.workers} workers, chunk order {args.chunk_order}, "
            f"{results['cluster_load']['chunks']} chunks, fsync off; service: dms-db serve (uvicorn, 1 process); "
            f"baseline: one server, same settings"
        )
        print(
            f"load avg: start {results['load_avg_at_start'][0]:.2f}, end {results['load_avg_at_end'][0]:.2f} "
            f"({os.cpu_count()} CPUs, clients and servers on the same machine)"
        )
        print()
        print_table(summaries)
        print()
        for name, ratio in results["ratios"].items():
            print(
                f"{name:<28} p50 {ratio['p50']:>6.2f}x   p95 {ratio['p95']:>6.2f}x   "
                f"throughput {ratio['throughput']:>5.2f}x"
            )
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
