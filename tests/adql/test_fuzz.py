"""Fuzz the translator: only the project's own ADQL errors may come out.

Over ten thousand generated and mutated queries go through parse, name
resolution and translation; any exception other than an
:class:`~adql.errors.AdqlError` (or a translation slower than two seconds,
the sign of a hang) fails the test.  A sample of generated queries that
translate is also executed, where PostgreSQL may only complain about data
(division by zero, out-of-range values), never about the SQL itself.
"""

from __future__ import annotations

import time

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adql import AdqlError, TableCatalog, translate
from tests.adql.corpus import load_cases
from tests.adql.fuzz_strategies import adql_query, mutated, valid_query
from tests.adql.reference_data import reference_catalog

CATALOG = reference_catalog()
SEEDS = [case.adql for case in load_cases()]
SLOW = 2.0
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _translate_or_adql_error(text: str, catalog: TableCatalog = CATALOG):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        result = translate(text, catalog, max_rows=1000)
    except AdqlError as error:
        assert error.error_type and error.message, repr(error)
        result = None
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, f"translation took {elapsed:.1f} s: {text!r}"
    if result is not None:
        assert isinstance(result.sql, str) and result.sql.startswith(("SELECT", "WITH", "("))
        assert result.columns
    return result


@settings(FUZZ_SETTINGS, max_examples=5000)
@given(adql_query())
def test_generated_queries(text: str) -> None:
    _translate_or_adql_error(text)


@settings(FUZZ_SETTINGS, max_examples=6000)
@given(mutated(SEEDS))
def test_mutated_queries(text: str) -> None:
    _translate_or_adql_error(text)


@settings(FUZZ_SETTINGS, max_examples=500)
@given(st.text(max_size=80))
def test_arbitrary_text(text: str) -> None:
    _translate_or_adql_error(text)


# SQLSTATE classes that mean "the data", not "the SQL", is at fault (22: data
# exception such as division by zero; 57014: our statement timeout).
_DATA_PROBLEMS = ("22", "57014")
EXECUTED_SEEDS = range(600)


def test_generated_queries_execute(adql_connection: psycopg.Connection, db_catalog: TableCatalog) -> None:
    ran = 0
    for seed in EXECUTED_SEEDS:
        text = valid_query(seed)
        result = _translate_or_adql_error(text, db_catalog)
        if result is None:
            continue
        ran += 1
        try:
            with adql_connection.transaction():
                adql_connection.execute("SET LOCAL statement_timeout = '300ms'")
                adql_connection.execute(result.sql).fetchmany(5)
        except psycopg.Error as error:
            state = error.sqlstate or ""
            assert state.startswith(_DATA_PROBLEMS), f"{state}: {error}\nADQL: {text}\nSQL: {result.sql}"
    assert ran >= 200, f"only {ran} generated queries translated"
