"""Load the ADQL test corpus and compare query results.

The corpus lives in ``tests/fixtures/adql/*.yaml``.  Each case has an ``id``
and ``adql`` and either

* ``reference``: hand-written PostgreSQL whose result the translation must
  reproduce (``ordered: true`` compares row order too), optionally with
  ``max_rows``, ``columns`` (expected metadata of some result columns) and
  ``sql_contains`` (fragments the translated SQL must contain); or
* ``error``: the expected ``type`` and optionally ``line``, ``column`` and
  ``text`` (a fragment the offending text must contain).
"""

from __future__ import annotations

import datetime
import decimal
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "adql"


@dataclass(frozen=True)
class Case:
    """One corpus case."""

    id: str
    adql: str
    source: str
    reference: str | None = None
    ordered: bool = False
    max_rows: int | None = None
    error: dict[str, Any] | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    sql_contains: list[str] = field(default_factory=list)
    spec: bool = False


def load_cases() -> list[Case]:
    """Return every case of every corpus file, in file order."""
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            cases.append(
                Case(
                    id=raw["id"],
                    adql=raw["adql"],
                    source=path.name,
                    reference=raw.get("reference"),
                    ordered=bool(raw.get("ordered", False)),
                    max_rows=raw.get("max_rows"),
                    error=raw.get("error"),
                    columns=raw.get("columns") or [],
                    sql_contains=raw.get("sql_contains") or [],
                    spec=bool(raw.get("spec", False)),
                )
            )
    return cases


def _normal(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return value


def _sort_key(row: tuple) -> tuple:
    key = []
    for value in row:
        if value is None:
            key.append((0, ""))
        elif isinstance(value, float):
            key.append((1, f"{value:.6e}" if math.isfinite(value) else repr(value)))
        elif isinstance(value, tuple):
            key.append((2, repr(tuple(round(v, 6) if isinstance(v, float) else v for v in value))))
        else:
            key.append((3, repr(value)))
    return tuple(key)


def values_equal(left: Any, right: Any) -> bool:
    """Compare two result values, floats with a relative tolerance of 1e-9."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
            return True
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(values_equal(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def compare_results(actual: list[tuple], expected: list[tuple], ordered: bool) -> str | None:
    """Return None if the results match, else a description of the first difference."""
    actual = [tuple(_normal(v) for v in row) for row in actual]
    expected = [tuple(_normal(v) for v in row) for row in expected]
    if len(actual) != len(expected):
        return f"{len(actual)} rows instead of {len(expected)}"
    if not ordered:
        actual = sorted(actual, key=_sort_key)
        expected = sorted(expected, key=_sort_key)
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if len(a) != len(e):
            return f"row {index} has {len(a)} columns instead of {len(e)}"
        if not all(values_equal(x, y) for x, y in zip(a, e, strict=True)):
            return f"row {index}: {a!r} != {e!r}"
    return None
