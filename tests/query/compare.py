"""Run a query on the reference and compare another answer with it, row for row.

Rows are compared in order when the query has a top-level ORDER BY (every
such corpus query orders totally, with an id as the last key), and as
multisets otherwise.

Floats are compared with a relative tolerance, chosen per column from the
reference column's type:

* ``double precision`` and ``numeric``: 1e-9.  A value read from a stored
  column or computed row by row is bit-identical on both sides; what differs
  is the order in which aggregates add up (per worker, then merged), which
  changes the last bits of a double sum (about 1e-16 relative per term), and
  the engine may merge an AVG as SUM/COUNT in another type;
* ``real``: 1e-5.  A sum of ``real`` values is accumulated in single
  precision (about 6e-8 relative per addition), so adding the same values in
  another order moves the result by far more than 1e-9.

A case may set its own ``rel_tol``, for averages of ``real`` columns (double
results computed from single-precision partial sums).
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import psycopg

FLOAT4_OID = 700
FLOAT8_OID = 701
NUMERIC_OID = 1700
DOUBLE_REL_TOL = 1e-9
REAL_REL_TOL = 1e-5
ABS_TOL = 1e-12  # values computed as 0 on one side may come out as 1e-17 on the other


@dataclass(frozen=True)
class Answer:
    """A query's result: column names, the reference's column type OIDs, rows."""

    columns: tuple[str, ...]
    type_oids: tuple[int, ...]
    rows: list[tuple[Any, ...]]


def run_reference(conn: psycopg.Connection, sql_text: str) -> Answer:
    """Run translated SQL on the reference database (read-only, in its own transaction)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql_text)
        description = cur.description or []
        rows = cur.fetchall()
    return Answer(tuple(d.name for d in description), tuple(d.type_code for d in description), rows)


def tolerances(answer: Answer, rel_tol: float | None) -> tuple[float, ...]:
    """Relative tolerance of each column (see the module docstring)."""
    if rel_tol is not None:
        return tuple(rel_tol for _ in answer.type_oids)
    return tuple(REAL_REL_TOL if oid == FLOAT4_OID else DOUBLE_REL_TOL for oid in answer.type_oids)


def _normal(value: Any) -> Any:
    """One spelling per value: numbers as int/float, sequences as tuples, naive times."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def values_equal(actual: Any, expected: Any, rel_tol: float) -> bool:
    """Equal, floats within ``rel_tol`` (exact for integers, strings, booleans, times)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected or (actual == expected and type(actual) is type(expected))
    if isinstance(actual, float) or isinstance(expected, float):
        if not isinstance(actual, (int, float)) or not isinstance(expected, (int, float)):
            return False
        if math.isnan(actual) or math.isnan(expected):
            return math.isnan(actual) and math.isnan(expected)
        return math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=ABS_TOL)
    if isinstance(actual, tuple) and isinstance(expected, tuple):
        return len(actual) == len(expected) and all(
            values_equal(a, e, rel_tol) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


def rows_equal(actual: tuple, expected: tuple, tols: Sequence[float]) -> bool:
    """Row equality, column by column with each column's tolerance."""
    return len(actual) == len(expected) and all(
        values_equal(a, e, t) for a, e, t in zip(actual, expected, tols, strict=True)
    )


def _has_float(value: Any) -> bool:
    return isinstance(value, float) or (isinstance(value, tuple) and any(_has_float(v) for v in value))


def _exact_key(row: tuple) -> tuple:
    """Sort key from the values compared exactly; floats are left out (they may differ in the last bits)."""
    key = []
    for value in row:
        if value is None:
            key.append((0, ""))
        elif _has_float(value):
            key.append((1, ""))
        elif isinstance(value, (bool, int)):
            key.append((2, f"{int(value):+021d}"))
        else:
            key.append((3, repr(value)))
    return tuple(key)


def _float_key(row: tuple) -> tuple:
    """Secondary key: floats rounded to 6 significant digits, to line up rows that only floats tell apart."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}") if math.isfinite(value) else 0.0
        if isinstance(value, tuple):
            return tuple(rounded(v) for v in value)
        return 0

    return tuple((isinstance(v, (float, tuple)), rounded(v)) for v in row)


def _match_group(actual: list[tuple], expected: list[tuple], tols: Sequence[float]) -> tuple | None:
    """Match two groups of rows that agree on their exact values; return an unmatched actual row, if any."""
    if len(actual) == 1 and len(expected) == 1:
        return None if rows_equal(actual[0], expected[0], tols) else actual[0]
    actual = sorted(actual, key=_float_key)
    expected = sorted(expected, key=_float_key)
    if all(rows_equal(a, e, tols) for a, e in zip(actual, expected, strict=True)):
        return None
    remaining = list(expected)  # rounding put near-equal rows in another order: match greedily
    for row in actual:
        for index, candidate in enumerate(remaining):
            if rows_equal(row, candidate, tols):
                del remaining[index]
                break
        else:
            return row
    return None


def compare_rows(actual: list[tuple], expected: list[tuple], tols: Sequence[float], ordered: bool) -> str | None:
    """None if the rows match, else a description of the first difference."""
    actual = [tuple(_normal(v) for v in row) for row in actual]
    expected = [tuple(_normal(v) for v in row) for row in expected]
    if len(actual) != len(expected):
        return f"{len(actual)} rows instead of {len(expected)}; first rows {actual[:3]!r} vs {expected[:3]!r}"
    width = len(tols)
    for index, row in enumerate(actual):
        if len(row) != width:
            return f"row {index} has {len(row)} columns instead of {width}"
    if ordered:
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            if not rows_equal(a, e, tols):
                return f"row {index} (in ORDER BY order): {a!r} != {e!r}"
        return None
    by_key_a = {k: list(g) for k, g in groupby(sorted(actual, key=_exact_key), key=_exact_key)}
    by_key_e = {k: list(g) for k, g in groupby(sorted(expected, key=_exact_key), key=_exact_key)}
    for key, rows in by_key_a.items():
        others = by_key_e.get(key)
        if others is None or len(others) != len(rows):
            wanted = 0 if others is None else len(others)
            return f"{len(rows)} rows like {rows[0]!r} instead of {wanted}"
        unmatched = _match_group(rows, others, tols)
        if unmatched is not None:
            return f"row {unmatched!r} has no equal row in the reference (nearest: {others[:2]!r})"
    return None


def is_ordered(tree: Any) -> bool:
    """Whether a translated query (sqlglot tree) has a top-level ORDER BY."""
    return tree.args.get("order") is not None


def expectation_problem(empty_expected: bool, answer: Answer) -> str | None:
    """Check a reference answer against the case's ``empty`` flag; None if it is as the corpus says.

    "Empty" means no rows matched: no result rows, or one row of aggregates
    over nothing (counts 0, everything else NULL).
    """
    nothing = not answer.rows or (len(answer.rows) == 1 and all(v in (0, None) for v in answer.rows[0]))
    if empty_expected and not nothing:
        return f"the reference answer has rows ({answer.rows[:2]!r}) but the case is marked empty"
    if not empty_expected and nothing:
        return f"the reference answer is empty ({answer.rows!r}): fix the query or mark the case empty"
    return None
