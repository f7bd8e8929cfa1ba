"""The benchmark's queries and their timing on the engine and on the unsharded baseline.

Each :class:`QueryCase` is one line of the printed table: a few variants of one query (cone
centres, object ids), each run ``repeat`` times on both sides, the two sides alternating so
that both see the same load. The first run of every variant is not timed: it warms both sides
up and checks that the engine's rows equal the baseline's (``tests.query.compare``, the
correctness suite's comparison); every timed run checks the row count again. A difference
raises :class:`WrongAnswerError`: a benchmark of wrong answers is worthless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from adql import TableCatalog, translate
from bench.query.data import BenchData
from sharding.coordinator import QueryEngine
from tests.query.compare import compare_rows, is_ordered, run_reference, tolerances

CONE_RADII = (("1'", 1.0 / 60.0), ("10'", 10.0 / 60.0), ("1 deg", 1.0))
LIGHT_CURVE_MIN_POINTS = 10
TOP_N = 100
# Targets of the issue: engine p50 / baseline p50 at most this (COUNT(*): "far below 1").
TARGET_LOOKUP = 1.5
TARGET_FULL_TABLE = 1.2
TARGET_COUNT = 0.5
AGGREGATE_REL_TOL = 1e-6  # AVG of a real column: double results of single-precision partial sums

CONE_COLUMNS = {
    "DiaObject": "diaObjectId, ra, dec, nDiaSources, r_psfFluxMean",
    "DiaSource": "diaSourceId, diaObjectId, ra, dec, midpointMjdTai, band, psfFlux, psfFluxErr",
}


class WrongAnswerError(RuntimeError):
    """The engine and the baseline disagree on a query."""


@dataclass(frozen=True)
class QueryCase:
    """One benchmarked query: its variants and the latency ratio it should stay under."""

    name: str
    variants: tuple[str, ...]
    target: float
    rel_tol: float | None = None


@dataclass
class CaseResult:
    """Timings (seconds) of one case on both sides, and what the check saw."""

    case: QueryCase
    engine: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    translate: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)  # the engine's first run of each variant: a new query text
    rows: list[int] = field(default_factory=list)  # rows of each variant

    def summary(self) -> dict[str, Any]:
        """p50/p95 of each side, their p50 ratio and whether the target is met."""
        engine = np.percentile(self.engine, [50, 95])
        baseline = np.percentile(self.baseline, [50, 95])
        ratio = float(engine[0] / baseline[0])
        return {
            "query": self.case.name,
            "variants": len(self.case.variants),
            "samples": len(self.engine),
            "rows_mean": float(np.mean(self.rows)),
            "engine_p50_ms": 1e3 * float(engine[0]),
            "engine_p95_ms": 1e3 * float(engine[1]),
            "baseline_p50_ms": 1e3 * float(baseline[0]),
            "baseline_p95_ms": 1e3 * float(baseline[1]),
            "translate_p50_ms": 1e3 * float(np.median(self.translate)),
            "first_run_p50_ms": 1e3 * float(np.median(self.first)),
            "ratio_p50": ratio,
            "target": self.case.target,
            "met": ratio <= self.case.target,
            "adql_example": self.case.variants[0],
        }


def build_cases(data: BenchData, rng: np.random.Generator, centres: int, ids: int) -> list[QueryCase]:
    """The issue's queries, with random cone centres (1 degree inside the data area) and existing ids."""
    ra, dec = data.area.uniform(rng, centres, margin_deg=1.0)
    cases = []
    for table, columns in CONE_COLUMNS.items():
        for label, radius in CONE_RADII:
            variants = tuple(
                # ADQL text, as a user sends it, from our own numbers (S608 is about SQL)
                f"SELECT {columns} FROM apdb.{table} "  # noqa: S608
                f"WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {r:.6f}, {d:.6f}, {radius:.10g})) = 1"
                for r, d in zip(ra, dec, strict=True)
            )
            cases.append(QueryCase(f"cone {label} {table}", variants, TARGET_LOOKUP))
    object_ids = data.dia_objects.column("diaObjectId").to_numpy()
    lookups = rng.choice(object_ids, ids, replace=False)
    cases.append(
        QueryCase(
            "DiaObject by id",
            tuple(f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(i)}" for i in lookups),  # noqa: S608
            TARGET_LOOKUP,
        )
    )
    long_curves = object_ids[data.sources_per_object >= LIGHT_CURVE_MIN_POINTS]
    curves = rng.choice(long_curves, min(ids, long_curves.size), replace=False)
    cases.append(
        QueryCase(
            f"light curve (>={LIGHT_CURVE_MIN_POINTS} pts)",
            tuple(
                "SELECT diaSourceId, midpointMjdTai, band, psfFlux, psfFluxErr FROM apdb.DiaSource "  # noqa: S608
                f"WHERE diaObjectId = {int(i)} ORDER BY midpointMjdTai, diaSourceId"
                for i in curves
            ),
            TARGET_LOOKUP,
        )
    )
    cases.append(
        QueryCase(
            "GROUP BY band",
            ("SELECT band, COUNT(*) AS n, AVG(psfFlux) AS mean_flux FROM apdb.DiaSource GROUP BY band",),
            TARGET_FULL_TABLE,
            AGGREGATE_REL_TOL,
        )
    )
    cases.append(
        QueryCase(
            f"TOP {TOP_N} ORDER BY psfFlux",
            (
                f"SELECT TOP {TOP_N} diaSourceId, diaObjectId, band, psfFlux FROM apdb.DiaSource "  # noqa: S608
                "ORDER BY psfFlux DESC, diaSourceId",
            ),
            TARGET_FULL_TABLE,
        )
    )
    cases.append(QueryCase("COUNT(*)", ("SELECT COUNT(*) AS n FROM apdb.DiaSource",), TARGET_COUNT))
    return cases


def engine_run(engine: QueryEngine, adql_text: str) -> tuple[float, list[tuple[Any, ...]]]:
    """Seconds for the engine to answer and deliver every row, and the rows."""
    start = time.perf_counter()
    with engine.query(adql_text) as result:
        rows = list(result)
    return time.perf_counter() - start, rows


def baseline_run(conn: psycopg.Connection, sql_text: str) -> tuple[float, int]:
    """Seconds for the baseline server to answer and deliver every row, and the row count."""
    start = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.execute(sql_text)
        rows = cursor.fetchall()
    return time.perf_counter() - start, len(rows)


def _verify(engine: QueryEngine, conn: psycopg.Connection, catalog: TableCatalog, case: QueryCase, adql_text: str):
    """Untimed first run on both sides: warm-up and a row-for-row comparison; returns the SQL and row count."""
    start = time.perf_counter()
    translated = translate(adql_text, catalog)
    translate_seconds = time.perf_counter() - start
    expected = run_reference(conn, translated.sql)
    first_seconds, rows = engine_run(engine, adql_text)
    difference = compare_rows(rows, expected.rows, tolerances(expected, case.rel_tol), is_ordered(translated.tree))
    if difference is not None:
        raise WrongAnswerError(f"{case.name}: the engine's rows differ from the baseline's: {difference}\n{adql_text}")
    return translated.sql, len(expected.rows), translate_seconds, first_seconds


def run_case(
    engine: QueryEngine, conn: psycopg.Connection, catalog: TableCatalog, case: QueryCase, repeat: int
) -> CaseResult:
    """Verify every variant once, then time each ``repeat`` times on both sides, alternating."""
    result = CaseResult(case)
    for adql_text in case.variants:
        sql_text, expected, translate_seconds, first_seconds = _verify(engine, conn, catalog, case, adql_text)
        result.rows.append(expected)
        result.translate.append(translate_seconds)
        result.first.append(first_seconds)
        for index in range(repeat):
            for side in ("engine", "baseline") if index % 2 == 0 else ("baseline", "engine"):
                if side == "engine":
                    seconds, rows = engine_run(engine, adql_text)
                    count = len(rows)
                    result.engine.append(seconds)
                else:
                    seconds, count = baseline_run(conn, sql_text)
                    result.baseline.append(seconds)
                if count != expected:
                    raise WrongAnswerError(
                        f"{case.name}: {side} returned {count} rows, the verified answer has {expected}\n{adql_text}"
                    )
    return result
