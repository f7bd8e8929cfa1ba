"""Micro-benchmark of the binary COPY encoder on a DiaSource-like batch.

Reports rows/s for: encoding alone; COPY of a payload encoded beforehand, fed by psycopg
(directly or from its writer thread) and by psql's ``\\copy`` (the ceiling: the server ingesting
binary COPY as fast as a client can feed it); encoding and COPY streamed together with
``copy_binary_into``; and psycopg's ``Copy.write_row`` loop on a smaller sample, with Python
rows built beforehand and built from the table.  Each COPY goes into the same unindexed table,
truncated before each run; runs are interleaved and the best of each is kept.

Usage::

    python bench/ingest/copy_encoder.py [DSN] [--rows 1000000] [--batch-rows 100000]

The DSN may also come from ``DMS_BENCH_DSN``; without one, only the encoder is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from loaders.copy_binary import CopyColumn, copy_binary_into, encode_copy_binary

BIGINT_IDS = ["diaSourceId", "diaObjectId", "ssObjectId", "parentDiaSourceId", "visit"]
DOUBLES = ["ra", "dec", "x", "y", "psfFlux", "psfFluxErr", "apFlux", "apFluxErr", "scienceFlux", "scienceFluxErr"]
REALS = ["raErr", "decErr", "ra_dec_Cov", "xErr", "yErr", "snr", "psfChi2", "extendedness", "reliability"]
REALS += ["ixx", "iyy", "ixy"]
FLAGS = ["isDipole", "pixelFlags", "pixelFlags_bad", "pixelFlags_cr", "trailFlag_edge"]
NEVER_NULL = {"diaSourceId", "visit", "detector", "midpointMjdTai", "band", "ra", "dec", "x", "y"}

COLUMNS = (
    [CopyColumn(name, "bigint") for name in BIGINT_IDS]
    + [CopyColumn("detector", "smallint"), CopyColumn("psfNdata", "integer")]
    + [CopyColumn("midpointMjdTai", "timestamp"), CopyColumn("band", "char(1)")]
    + [CopyColumn(name, "double precision") for name in DOUBLES]
    + [CopyColumn(name, "real") for name in REALS]
    + [CopyColumn(name, "boolean") for name in FLAGS]
)

# pandas dtypes that keep NULLs apart from NaN (a plain float64 column would turn them into NaN).
NULLABLE_PANDAS = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.float32(): pd.Float32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def diasource_batch(rows: int, seed: int = 42, null_fraction: float = 0.05) -> pa.Table:
    """A seeded DiaSource-like table: 36 columns, ~5% NULLs outside the identifying columns."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    values: dict[str, np.ndarray] = {
        "diaSourceId": np.arange(rows, dtype=np.int64) + 10**15,
        "diaObjectId": rng.integers(0, 2**62, rows),
        "ssObjectId": rng.integers(0, 2**62, rows),
        "parentDiaSourceId": rng.integers(0, 2**62, rows),
        "visit": rng.integers(0, 10**7, rows),
        "detector": rng.integers(0, 189, rows).astype(np.int16),
        "psfNdata": rng.integers(0, 2**20, rows).astype(np.int32),
        "midpointMjdTai": start + rng.integers(0, 10**13, rows).astype("timedelta64[us]"),
        "band": rng.choice(np.array(list("ugrizy"), dtype=object), rows),
    }
    values |= {name: rng.normal(size=rows) for name in DOUBLES}
    values |= {name: rng.normal(size=rows).astype(np.float32) for name in REALS}
    values |= {name: rng.random(rows) < 0.1 for name in FLAGS}
    arrays = {}
    for column in COLUMNS:
        nulls = None if column.name in NEVER_NULL else rng.random(rows) < null_fraction
        arrays[column.name] = pa.array(values[column.name], mask=nulls)
    return pa.table(arrays)


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """Shortest wall time of ``repeats`` runs (the least disturbed by other work)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def batches(table: pa.Table, batch_rows: int) -> list[pa.Table]:
    """Row slices of ``table`` (zero-copy)."""
    return [table.slice(lo, batch_rows) for lo in range(0, table.num_rows, batch_rows)]


def create_table(conn: psycopg.Connection, name: str) -> sql.Identifier:
    """A fresh unindexed table with the benchmark's columns."""
    table = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.pg_type)) for column in COLUMNS
    )
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, definition))
    conn.commit()
    return table


def copy_statement(table: sql.Identifier) -> sql.Composed:
    """The benchmark's COPY statement."""
    names = sql.SQL(", ").join(sql.Identifier(column.name) for column in COLUMNS)
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, names)


def raw_copy(conn: psycopg.Connection, table: sql.Identifier, payload: memoryview, queued: bool) -> None:
    """COPY a payload encoded beforehand, written by psycopg directly or from its writer thread."""
    with conn.cursor() as cursor:
        writer = QueuedLibpqWriter(cursor) if queued else None
        with cursor.copy(copy_statement(table), writer=writer) as copy:
            copy.write(payload)


def psql_copy(dsn: str, table: sql.Identifier, path: str) -> None:
    """COPY a payload file with psql's \\copy: libpq fed by C, no Python at all."""
    with psycopg.connect(dsn) as conn:
        statement = copy_statement(table).as_string(conn).replace("STDIN", f"'{path}'")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", "\\" + statement], check=True)


def write_row_copy(conn: psycopg.Connection, table: sql.Identifier, rows: list[tuple]) -> None:
    """COPY with psycopg's per-row API, rows already converted to Python objects."""
    with conn.cursor() as cursor, cursor.copy(copy_statement(table)) as copy:
        # psycopg has no binary dumper for bpchar; its wire format is text's.
        copy.set_types(["text" if column.pg_type == "char(1)" else column.pg_type for column in COLUMNS])
        for row in rows:
            copy.write_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn", nargs="?", default=os.environ.get("DMS_BENCH_DSN"), help="PostgreSQL DSN")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows encoded and loaded")
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows per encoded batch when streaming")
    parser.add_argument("--write-row-rows", type=int, default=100_000, help="rows loaded with write_row")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()

    table = diasource_batch(args.rows)
    payload = encode_copy_binary(table, COLUMNS)
    print(f"{args.rows} rows x {len(COLUMNS)} columns, {len(payload) / args.rows:.0f} payload bytes/row")
    encode = args.rows / best_of(args.repeats, lambda: encode_copy_binary(table, COLUMNS))
    print(f"encode, one batch:            {encode:12,.0f} rows/s")
    encode_batched = args.rows / best_of(
        args.repeats, lambda: [encode_copy_binary(b, COLUMNS) for b in batches(table, args.batch_rows)]
    )
    print(f"encode, {args.batch_rows}-row batches: {encode_batched:12,.0f} rows/s")
    frame = table.to_pandas(types_mapper=NULLABLE_PANDAS.get)
    pandas = args.rows / best_of(args.repeats, lambda: encode_copy_binary(frame, COLUMNS))
    print(f"encode, from pandas:          {pandas:12,.0f} rows/s")
    if not args.dsn:
        print("no DSN (argument or DMS_BENCH_DSN): COPY not measured")
        return

    with psycopg.connect(args.dsn) as conn, tempfile.NamedTemporaryFile(suffix=".pgcopy") as payload_file:
        target = create_table(conn, "bench_copy_encoder")
        settings = conn.execute("SELECT current_setting('fsync'), current_setting('shared_buffers')").fetchone()
        print(f"server: fsync={settings[0]}, shared_buffers={settings[1]}; client: {os.cpu_count()} CPUs")
        payload_file.write(payload)
        payload_file.flush()
        sample = table.slice(0, args.write_row_rows)

        def python_rows() -> list[tuple]:
            return list(zip(*(sample.column(c.name).to_pylist() for c in COLUMNS), strict=True))

        rows = python_rows()
        scenarios: dict[str, tuple[int, Callable[[], object]]] = {
            "ready payload, psycopg write": (args.rows, lambda: raw_copy(conn, target, payload, queued=False)),
            "ready payload, psycopg thread": (args.rows, lambda: raw_copy(conn, target, payload, queued=True)),
            "encode + COPY, copy_binary_into": (
                args.rows,
                lambda: copy_binary_into(conn, target, COLUMNS, batches(table, args.batch_rows)),
            ),
            "encode + COPY, write_row's sample": (len(rows), lambda: copy_binary_into(conn, target, COLUMNS, [sample])),
            "write_row, Python rows ready": (len(rows), lambda: write_row_copy(conn, target, rows)),
            "write_row, from the table": (len(rows), lambda: write_row_copy(conn, target, python_rows())),
        }
        if shutil.which("psql"):
            scenarios["ready payload, psql \\copy file"] = (
                args.rows,
                lambda: psql_copy(args.dsn, target, payload_file.name),
            )
        # Rounds of every scenario, best time of each: drifting load elsewhere on the machine hits all alike.
        best = dict.fromkeys(scenarios, float("inf"))
        client_cpu = dict.fromkeys(scenarios, float("inf"))
        for _ in range(args.repeats):
            for name, (count, action) in scenarios.items():
                conn.execute(sql.SQL("TRUNCATE {}").format(target))
                conn.commit()
                start, cpu = time.perf_counter(), time.process_time()
                action()
                conn.commit()
                best[name] = min(best[name], time.perf_counter() - start)
                client_cpu[name] = min(client_cpu[name], time.process_time() - cpu)
                loaded = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]
                if loaded != count:
                    raise SystemExit(f"{name}: loaded {loaded} rows, expected {count}")
        conn.execute(sql.SQL("DROP TABLE {}").format(target))
        conn.commit()

    speed = {name: scenarios[name][0] / seconds for name, seconds in best.items()}
    for name, rows_per_second in speed.items():
        cpu = client_cpu[name] / scenarios[name][0] * 1e6
        print(f"{name + ':':36s} {rows_per_second:12,.0f} rows/s, client CPU {cpu:.2f} us/row")
    ceiling = max(v for k, v in speed.items() if k.startswith("ready payload"))
    streamed = speed["encode + COPY, copy_binary_into"]
    print(f"encode + COPY / fastest ready-payload COPY: {streamed / ceiling:.2f}")
    same_sample = speed["encode + COPY, write_row's sample"]
    for variant in ("Python rows ready", "from the table"):
        ratio = same_sample / speed[f"write_row, {variant}"]
        print(f"encode + COPY / write_row ({variant}), same sample: {ratio:.1f}x")
    print(f"encode alone / fastest ready-payload COPY: {encode_batched / ceiling:.1f}x")
    print(f"load average: {os.getloadavg()[0]:.1f} (other work on the machine lowers the COPY figures)")


if __name__ == "__main__":
    main()
