"""Run the ADQL corpus: valid cases against real PostgreSQL + pgSphere, invalid ones for their errors.

Valid cases are translated with the catalog read from the reference
database's TAP_SCHEMA, executed, and compared with a hand-written reference
query on the same database.  Invalid cases must fail with the expected
error type at the expected position.
"""

from __future__ import annotations

import psycopg
import pytest

from adql import AdqlError, TableCatalog, translate
from adql.functions import AGGREGATES, ALL_FEATURES, FUNCTIONS
from tests.adql.corpus import Case, compare_results, load_cases

CASES = load_cases()
VALID = [case for case in CASES if case.error is None]
INVALID = [case for case in CASES if case.error is not None]


def test_corpus_is_large_and_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    assert len(CASES) >= 250
    assert sum(case.spec for case in CASES) >= 20, "the ADQL 2.1 document's examples are in the corpus"


@pytest.mark.parametrize("case", VALID, ids=[case.id for case in VALID])
def test_valid_case(case: Case, db_catalog: TableCatalog, adql_connection: psycopg.Connection) -> None:
    result = translate(case.adql, db_catalog, max_rows=case.max_rows)
    for fragment in case.sql_contains:
        assert fragment in result.sql, f"{fragment!r} not in {result.sql}"
    actual = adql_connection.execute(result.sql).fetchall()
    assert case.reference is not None
    expected = adql_connection.execute(case.reference).fetchall()
    difference = compare_results(actual, expected, case.ordered)
    assert difference is None, f"{difference}\nADQL: {case.adql}\nSQL: {result.sql}"
    names = [column.name for column in result.columns]
    assert len(names) == len(set(name.lower() for name in names)), "result column names are unique"
    for expected_column in case.columns:
        matching = [c for c in result.columns if c.name == expected_column["name"]]
        assert matching, f"no result column {expected_column['name']!r} in {names}"
        for key, value in expected_column.items():
            assert getattr(matching[0], key) == value, f"{expected_column['name']}.{key}"


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_invalid_case(case: Case, catalog: TableCatalog) -> None:
    assert case.error is not None
    with pytest.raises(AdqlError) as caught:
        translate(case.adql, catalog, max_rows=case.max_rows)
    error = caught.value
    assert error.error_type == case.error["type"], str(error)
    if "line" in case.error:
        assert error.line == case.error["line"], str(error)
    if "column" in case.error:
        assert error.column == case.error["column"], str(error)
    if "text" in case.error:
        assert error.text is not None and case.error["text"] in error.text, str(error)
    assert error.hint or error.error_type in ("UnknownName", "AdqlSyntaxError"), f"no hint: {error}"
    assert error.line is not None, f"no position: {error}"


def test_every_feature_and_function_is_exercised(catalog: TableCatalog) -> None:
    used_features = set()
    text = " ".join(case.adql.upper() for case in VALID)
    for case in VALID:
        used_features |= translate(case.adql, catalog).features
    missing = {feature.form for feature in ALL_FEATURES} - {feature.form for feature in used_features}
    assert not missing, f"optional features without a valid corpus case: {sorted(missing)}"
    unused = [name for name in [*FUNCTIONS, *AGGREGATES] if f"{name}(" not in text]
    assert not unused, f"functions without a valid corpus case: {unused}"
