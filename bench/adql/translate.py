"""Benchmark: how long ADQL translation takes for typical queries.

Run ``python -m bench.adql.translate`` (or ``python bench/adql/translate.py``).
For each query it reports the median and 95th percentile of the full
translation (parse, check, resolve, describe, rewrite, generate the SQL text)
and, as the baseline measured in the same run, of a bare sqlglot parse of the
same text (with the ADQL dialect) printed as PostgreSQL, with their ratio: the
cost of everything the translator adds to parsing.  It also reports the median
without the SQL text (``tree ms``), which is what the query engine pays: it
plans from the tree, and the text is generated only when asked for.  Timings
are for humans; no test asserts them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adql import ColumnInfo, TableCatalog, TableInfo, translate
from adql.dialect import parse_adql


def _columns(*specs: str) -> tuple[ColumnInfo, ...]:
    columns = []
    for spec in specs:
        name, datatype = spec.split(":")
        columns.append(ColumnInfo(name, datatype, unit="deg" if name in ("ra", "dec") else None))
    return tuple(columns)


CATALOG = TableCatalog(
    [
        TableInfo(
            "apdb",
            "DiaObject",
            _columns("diaObjectId:long", "ra:double", "dec:double", "nDiaSources:int", "g_psfFluxMean:double"),
            kind="director",
            director_key="diaObjectId",
            ra_column="ra",
            dec_column="dec",
        ),
        TableInfo(
            "apdb",
            "DiaSource",
            (
                *_columns(
                    "diaSourceId:long",
                    "diaObjectId:long",
                    "visit:long",
                    "ra:double",
                    "dec:double",
                    "midpointMjdTai:double",
                    "psfFlux:double",
                    "psfFluxErr:double",
                ),
                ColumnInfo("band", "char", "1"),
            ),
            kind="child",
            director_key="diaObjectId",
            director_table="apdb.DiaObject",
            ra_column="ra",
            dec_column="dec",
        ),
        TableInfo("apdb", "Visit", _columns("visit:long", "airmass:float", "ra:double", "dec:double")),
        TableInfo(
            "TAP_SCHEMA",
            "tables",
            (ColumnInfo("schema_name", "char", "*"), ColumnInfo("table_name", "char", "*")),
            kind="tap_schema",
        ),
    ]
)

QUERIES: dict[str, str] = {
    "tap_schema": "SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'apdb'",
    "cone_search": (
        "SELECT TOP 1000 diaObjectId, ra, dec, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, 20)) AS d "
        "FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.1)) ORDER BY d"
    ),
    "distance_cone": "SELECT * FROM apdb.DiaSource WHERE DISTANCE(ra, dec, 10, 20) < 0.05",
    "light_curve": (
        "SELECT midpointMjdTai, band, psfFlux, psfFluxErr FROM apdb.DiaSource "
        "WHERE diaObjectId = 1000007 ORDER BY midpointMjdTai"
    ),
    "statistics": (
        "SELECT band, COUNT(*) AS n, AVG(psfFlux), MIN(psfFlux), MAX(psfFlux) FROM apdb.DiaSource "
        "GROUP BY band HAVING COUNT(*) > 10 ORDER BY n DESC"
    ),
    "crossmatch": (
        "SELECT o.diaObjectId, s.diaSourceId FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s "
        "ON DISTANCE(o.ra, o.dec, s.ra, s.dec) < 1.0 / 3600 "
        "WHERE 1 = CONTAINS(POINT(o.ra, o.dec), POLYGON(9, 19, 11, 19, 11, 21, 9, 21))"
    ),
    "complex": (
        "WITH bright AS (SELECT diaObjectId, g_psfFluxMean FROM apdb.DiaObject WHERE g_psfFluxMean > 1000) "
        "SELECT b.diaObjectId, COUNT(s.diaSourceId) FROM bright AS b LEFT JOIN apdb.DiaSource AS s "
        "USING (diaObjectId) WHERE b.diaObjectId IN (SELECT diaObjectId FROM apdb.DiaSource WHERE band = 'g') "
        "GROUP BY b.diaObjectId UNION SELECT visit, 0 FROM apdb.Visit WHERE airmass < 1.1 ORDER BY 2 DESC OFFSET 5"
    ),
}


def _time(function: Callable[[], object], repeat: int) -> list[float]:
    function()  # warm up caches (sqlglot builds tries and tables lazily)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def run(repeat: int) -> list[dict[str, float | str]]:
    """Time every query; return one row per query (milliseconds)."""
    rows = []
    for name, text in QUERIES.items():
        translated = _time(lambda text=text: translate(text, CATALOG, max_rows=10001).sql, repeat)
        tree_only = _time(lambda text=text: translate(text, CATALOG, max_rows=10001), repeat)
        baseline = _time(lambda text=text: parse_adql(text).sql(dialect="postgres"), repeat)
        median, p95 = _summary(translated)
        base_median, base_p95 = _summary(baseline)
        rows.append(
            {
                "query": name,
                "median_ms": round(median, 3),
                "p95_ms": round(p95, 3),
                "tree_median_ms": round(statistics.median(tree_only), 3),
                "baseline_median_ms": round(base_median, 3),
                "baseline_p95_ms": round(base_p95, 3),
                "ratio": round(median / base_median, 2) if base_median else float("nan"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per query (default 200)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = run(args.repeat)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'query':<14}{'median ms':>11}{'p95 ms':>9}{'tree ms':>9}{'parse ms':>10}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['query']:<14}{row['median_ms']:>11.3f}{row['p95_ms']:>9.3f}{row['tree_median_ms']:>9.3f}"
            f"{row['baseline_median_ms']:>10.3f}{row['ratio']:>7.2f}"
        )
    all_medians = [float(row["median_ms"]) for row in rows]
    print(f"\nall queries: median of medians {statistics.median(all_medians):.3f} ms (repeat={args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
