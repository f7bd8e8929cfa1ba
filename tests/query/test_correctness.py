"""Sharded answers equal one unsharded PostgreSQL's, on 1, 2 and 4 workers with replication 1 and 2.

Each corpus query (``tests/fixtures/query/*.yaml``) runs through the
:class:`~sharding.coordinator.QueryEngine` of every configuration and, as
``adql.translate(...).sql`` with the same catalog, on the reference database
holding the same rows.  Column names must match, and rows must match row
for row: in order where the query has a top-level ORDER BY (every such
corpus query orders totally), as multisets otherwise.  Floats are compared
with a relative tolerance of 1e-9 for double precision and 1e-5 for real
(or the case's own): see :mod:`tests.query.compare` for why.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from adql import AdqlUnsupportedError, translate
from sharding.coordinator import QueryEngine
from tests.query.compare import Answer, compare_rows, expectation_problem, is_ordered, run_reference, tolerances
from tests.query.conftest import LoadedCluster
from tests.query.corpus import QueryCase, correctness_cases
from tests.query.dataset import QueryDataset
from tests.query.test_corpus import require_catalogs

# A guard against a hung query taking the whole suite with it; no test asserts a duration.
pytestmark = pytest.mark.timeout(300)

CASES = correctness_cases()
ORDERED_LIMIT_CASES = [c for c in CASES if c.shape in ("order_top", "light_curve", "near_neighbour")]
MAX_ROWS = 5


@pytest.fixture(scope="session")
def query_engine(loaded_cluster: LoadedCluster) -> Iterator[QueryEngine]:
    """The engine of one configuration's cluster."""
    engine = QueryEngine(loaded_cluster.cluster.topology)
    yield engine
    engine.close()


def reference_answer(conn: psycopg.Connection, cache: dict[str, Answer], sql_text: str) -> Answer:
    """The reference's answer to translated SQL, computed once per session."""
    if sql_text not in cache:
        cache[sql_text] = run_reference(conn, sql_text)
    return cache[sql_text]


def run_engine(engine: QueryEngine, adql_text: str, max_rows: int | None = None) -> tuple[tuple[Any, ...], list]:
    """Result columns and rows of a query run through the engine."""
    with engine.query(adql_text, max_rows=max_rows) as result:
        columns = tuple(result.columns)
        rows = list(result)
    return columns, rows


def check_against_reference(
    case: QueryCase,
    loaded: LoadedCluster,
    engine: QueryEngine,
    conn: psycopg.Connection,
    cache: dict[str, Answer],
    max_rows: int | None = None,
) -> None:
    """Run ``case`` on the engine and on the reference and compare columns and rows."""
    translated = translate(case.adql, loaded.catalog, max_rows=max_rows)
    expected = reference_answer(conn, cache, translated.sql)
    if max_rows is None:
        problem = expectation_problem(case.empty, expected)
        assert problem is None, f"corpus case {case.id}: {problem}"
    try:
        columns, rows = run_engine(engine, case.adql, max_rows)
    except AdqlUnsupportedError as error:
        if case.may_reject:
            pytest.skip(f"refused, which this case allows: {error}")
        pytest.fail(f"{case.id} ({case.shape}) refused a query the engine must answer: {error}\nADQL:\n{case.adql}")
    where = f"{loaded.configuration.id} {case.id} ({case.shape}: {case.note})\nADQL:\n{case.adql}"
    names = tuple(c.name for c in columns)
    assert names == expected.columns, f"column names {names} != reference {expected.columns}\n{where}"
    datatypes = [(c.name, c.datatype, c.arraysize) for c in columns]
    assert datatypes == [(c.name, c.datatype, c.arraysize) for c in translated.columns], f"column metadata\n{where}"
    difference = compare_rows(rows, expected.rows, tolerances(expected, case.rel_tol), is_ordered(translated.tree))
    assert difference is None, f"{difference}\n{where}"
    if engine.direct_plan(case.adql, max_rows) is not None:
        # Answered from one chunk: the same text again takes the direct path, which must agree too.
        answered = engine.direct_answers
        columns, rows = run_engine(engine, case.adql, max_rows)
        assert engine.direct_answers == answered + 1, f"the direct path declined a plan that still holds\n{where}"
        assert tuple(c.name for c in columns) == names, f"direct path: column names\n{where}"
        difference = compare_rows(rows, expected.rows, tolerances(expected, case.rel_tol), is_ordered(translated.tree))
        assert difference is None, f"direct path: {difference}\n{where}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sharded_answer_equals_reference(
    case: QueryCase,
    query_dataset: QueryDataset,
    loaded_cluster: LoadedCluster,
    query_engine: QueryEngine,
    reference_connection: psycopg.Connection,
    reference_answers: dict[str, Answer],
) -> None:
    require_catalogs(case, query_dataset)
    check_against_reference(case, loaded_cluster, query_engine, reference_connection, reference_answers)


@pytest.mark.parametrize("case", ORDERED_LIMIT_CASES, ids=[c.id for c in ORDERED_LIMIT_CASES])
def test_max_rows_keeps_the_first_rows(
    case: QueryCase,
    query_dataset: QueryDataset,
    loaded_cluster: LoadedCluster,
    query_engine: QueryEngine,
    reference_connection: psycopg.Connection,
    reference_answers: dict[str, Answer],
) -> None:
    """MAXREC (``max_rows``) on an ordered query returns the reference's first rows."""
    require_catalogs(case, query_dataset)
    translated = translate(case.adql, loaded_cluster.catalog)
    if not is_ordered(translated.tree):
        pytest.skip("without a total order the first rows are not defined")
    check_against_reference(
        case, loaded_cluster, query_engine, reference_connection, reference_answers, max_rows=MAX_ROWS
    )
