"""The corpus itself is sound: every query runs on the reference, with the result the corpus says.

These tests need no engine: they translate each query against the
reference's own TAP_SCHEMA and run it there, so a query that is invalid,
or whose answer is accidentally empty, is caught before it is compared with
anything.
"""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from adql import TableCatalog, translate
from tests.query.compare import expectation_problem, run_reference
from tests.query.corpus import SHAPES, QueryCase, correctness_cases, unsupported_cases
from tests.query.dataset import QueryDataset

CASES = correctness_cases()
UNSUPPORTED = unsupported_cases()
MIN_QUERIES = 150
MIN_PER_SHAPE = 4


def require_catalogs(case: QueryCase, dataset: QueryDataset) -> None:
    """Skip a case that reads a real catalog the shared data folder does not have."""
    absent = case.catalogs - dataset.schema_names
    if absent:
        pytest.skip(f"needs the real catalog(s) {sorted(absent)}: " + "; ".join(dataset.missing))


def test_the_corpus_is_large_and_covers_every_shape() -> None:
    shapes = Counter(case.shape for case in CASES)
    assert len(CASES) >= MIN_QUERIES
    thin = {shape: shapes[shape] for shape in SHAPES if shapes[shape] < MIN_PER_SHAPE}
    assert not thin, f"shapes with fewer than {MIN_PER_SHAPE} queries: {thin}"
    assert len(UNSUPPORTED) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_query_runs_on_the_reference(
    case: QueryCase,
    query_dataset: QueryDataset,
    reference_connection: psycopg.Connection,
    reference_catalog: TableCatalog,
) -> None:
    require_catalogs(case, query_dataset)
    answer = run_reference(reference_connection, translate(case.adql, reference_catalog).sql)
    problem = expectation_problem(case.empty, answer)
    assert problem is None, f"{case.id}: {problem}\n{case.adql}"


@pytest.mark.parametrize("case", UNSUPPORTED, ids=[c.id for c in UNSUPPORTED])
def test_unsupported_query_is_valid_adql(
    case: QueryCase, query_dataset: QueryDataset, reference_catalog: TableCatalog
) -> None:
    """A query the engine must refuse is one a single server answers: refusing it is the engine's call."""
    require_catalogs(case, query_dataset)
    translated = translate(case.adql, reference_catalog)
    assert translated.sql
