"""The correctness corpus: ADQL queries whose sharded answers must equal one unsharded PostgreSQL's.

The cases live in ``tests/fixtures/query/*.yaml``; ``unsupported.yaml``
holds the queries the engine must refuse.  Each case has

* ``id``: unique, used as the pytest id;
* ``shape``: the query shape it covers (see :data:`SHAPES`);
* ``note``: what about the shape it exercises;
* ``adql``: the query;

and optionally

* ``empty: true``: the empty result is the point (otherwise the reference
  answer must have rows, so that a corpus query cannot silently degenerate);
* ``rel_tol``: relative tolerance of float columns, where the default per
  column type is not enough (sums and averages of ``real`` columns);
* ``may_reject: true``: the engine may refuse it with an "unsupported"
  error instead of answering; if it answers, the answer must be right.

Unsupported cases have ``id``, ``note`` and ``adql`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

CORPUS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "query"
UNSUPPORTED_FILE = "unsupported.yaml"

SHAPES = {
    "cone": "cone search (CONTAINS/INTERSECTS with a circle, DISTANCE < r)",
    "polygon": "polygon or box search",
    "or_regions": "several regions OR-ed",
    "range": "ra/dec BETWEEN and comparisons, across RA 0/360 and near the poles",
    "and_tree": "spatial restrictor anywhere in the AND tree",
    "director_key": "director-key =, IN, BETWEEN, ranges on director and child tables",
    "light_curve": "the child rows of one director, in time order",
    "replicated": "replicated tables (Visit, CcdVisit, SSObject) alone",
    "tap_schema": "TAP_SCHEMA alone",
    "aggregate": "COUNT, SUM, MIN, MAX, AVG, COUNT(DISTINCT), DISTINCT",
    "group_by": "GROUP BY with and without HAVING",
    "order_top": "ORDER BY with TOP and OFFSET",
    "expression": "CASE, CAST and functions in select list, WHERE, GROUP BY, ORDER BY",
    "join_child": "director-child joins on the director key (inner and LEFT)",
    "join_replicated": "joins with replicated tables",
    "near_neighbour": "near-neighbour self-join of a director table within the overlap margin",
    "subquery": "uncorrelated IN / EXISTS / scalar subqueries",
    "derived": "subqueries in FROM and WITH",
    "set_operation": "UNION [ALL], INTERSECT, EXCEPT",
    "count_all": "COUNT(*) with no filter",
    "empty": "empty results and aggregates over empty results",
}

REAL_CATALOGS = ("hip", "ogle")
"""Catalogs read from the shared data folder; cases using them skip when it is absent."""


@dataclass(frozen=True)
class QueryCase:
    """One corpus query."""

    id: str
    adql: str
    note: str
    shape: str = "unsupported"
    source: str = ""
    empty: bool = False
    rel_tol: float | None = None
    may_reject: bool = False

    @property
    def catalogs(self) -> frozenset[str]:
        """The real catalogs the query reads (``hip``, ``ogle``)."""
        return frozenset(name for name in REAL_CATALOGS if re.search(rf"\b{name}\s*\.", self.adql, re.IGNORECASE))


def _read(path: Path, unsupported: bool) -> list[QueryCase]:
    cases = []
    for raw in yaml.safe_load(path.read_text()) or []:
        case = QueryCase(
            id=raw["id"],
            adql=raw["adql"].strip(),
            note=raw["note"],
            shape=raw.get("shape", "unsupported"),
            source=path.name,
            empty=bool(raw.get("empty", False)),
            rel_tol=raw.get("rel_tol"),
            may_reject=bool(raw.get("may_reject", False)),
        )
        if not unsupported and case.shape not in SHAPES:
            raise ValueError(f"{path.name}: case {case.id} has unknown shape {case.shape!r}")
        cases.append(case)
    return cases


def correctness_cases() -> list[QueryCase]:
    """Every case the engine must answer like the reference, in file order."""
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        if path.name != UNSUPPORTED_FILE:
            cases += _read(path, unsupported=False)
    _check_unique(cases)
    return cases


def unsupported_cases() -> list[QueryCase]:
    """Every case the engine must refuse."""
    cases = _read(CORPUS_DIR / UNSUPPORTED_FILE, unsupported=True)
    _check_unique(cases)
    return cases


def _check_unique(cases: list[QueryCase]) -> None:
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate corpus id {case.id}")
        seen.add(case.id)
