"""Fuzz every operation of the service's OpenAPI document with schemathesis: no input may cause a 5xx.

The schema is read from the running service (``/openapi.json``), so the
operations fuzzed are the ones actually served, async jobs included.  Each
operation gets a bounded number of generated requests, valid by the schema
(positive) and invalid (negative); every response must be below 500 and,
whatever its status, show neither a traceback nor a connection string.

Requests generated from the schema alone rarely get past parameter checking
(a random LANG is refused first), so /tap/sync is also fuzzed deeper: with a
valid query and the other parameters generated, and with LANG=ADQL and query
texts assembled from ADQL fragments, which reach the parser, the translator
and the workers.

schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``,
needed because the service's URL is only known once the session fixture has
started it) breaks on pytest 9 (it sets ``Node._nodeid``, which pytest 9 no
longer has), so each operation's cases are drawn from
``APIOperation.as_strategy`` under Hypothesis' ``@given`` instead, and every
operation is run even after one fails.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.api.conftest import TapCluster

pytestmark = pytest.mark.timeout(600)

MAX_EXAMPLES = 25
DEEP_EXAMPLES = 150
EXPECTED_OPERATIONS = {
    "GET /tap/sync",
    "POST /tap/sync",
    "GET /tap/capabilities",
    "GET /tap/availability",
    "GET /tap/tables",
    "GET /tap/tables/{table_name}",
    "GET /tap/examples",
}


@pytest.fixture(scope="module")
def tap_openapi(tap_url: str) -> Any:
    """The OpenAPI schema the running service publishes."""
    return schemathesis.openapi.from_url(f"{tap_url.removesuffix('/tap')}/openapi.json")


def fuzz_operation(operation: Any, mode: GenerationMode, forbidden: tuple[str, ...]) -> None:
    """Send MAX_EXAMPLES generated requests to one operation; raise on the first (shrunk) failure."""

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call_and_validate(checks=[not_a_server_error], timeout=60)
        for text in forbidden:
            assert text not in response.text, f"{case.method} {case.formatted_path}: the response contains {text!r}"

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_no_operation_answers_with_a_server_error(tap_openapi: Any, tap_cluster: TapCluster, mode: Any) -> None:
    operations = [result.ok() for result in tap_openapi.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert labels >= EXPECTED_OPERATIONS, f"operations missing from /openapi.json: {EXPECTED_OPERATIONS - labels}"
    forbidden = ("Traceback", "dbname=", "passfile=", tap_cluster.cluster.coordinator_dsn)
    failures = {}
    fuzzed = set()
    for operation in operations:
        try:
            fuzz_operation(operation, mode, forbidden)
            fuzzed.add(operation.label)
        except Unsatisfiable:
            # Negative mode has nothing to break in an operation whose only inputs are free-form strings.
            assert mode == GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"
        except Exception as exc:  # collect every operation's failure, not only the first one's
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + "\n\n".join(
        f"{label}:\n{failure}" for label, failure in failures.items()
    )
    assert {"GET /tap/sync", "POST /tap/sync"} <= fuzzed, f"the sync operations were not fuzzed ({mode.value})"


ADQL_HEADS = (
    "SELECT ",
    "SELECT TOP 1 * FROM dr.Object WHERE ",
    "SELECT objectId FROM dr.Object WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ",
    "SELECT COUNT(*) AS n FROM apdb.DiaSource GROUP BY ",
    "SELECT * FROM TAP_SCHEMA.",
    "SELECT TOP 5 objectId FROM dr.Object ORDER BY ",
    "SELECT o.objectId FROM dr.Object AS o JOIN dr.Source AS s ON ",
    "SELECT DISTANCE(POINT(ra, dec), POINT(",
    "SELECT objectId FROM dr.Object WHERE ra BETWEEN ",
    "SELECT TOP ",
)
ADQL_TOKENS = (
    *("ra", "dec", "objectId", "band", ",", "(", ")", "'", "1", "-1e400", "0.5", "NULL", "AND", "OR", "=", "<"),
    *("*", "/", "0", "POINT", "CIRCLE", "POLYGON", "BOX", "'ICRS'", "CONTAINS", "INTERSECTS", "FROM", "dr.Object"),
    *("TAP_UPLOAD.x", "9999999999999999999999", "ORDER BY", "GROUP BY", "HAVING", "COUNT(*)", "AVG(ra)", "LIKE"),
    *("'%'", "IN", "NOT", "IS", "CAST(", "AS", "BIGINT)", "TOP", '"', "--", ";", "\x00", "é", "OFFSET", "UNION"),
)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_sync_parameters_around_a_valid_query(tap_openapi: Any, tap_cluster: TapCluster, method: str) -> None:
    """FORMAT, MAXREC, UPLOAD, RUNID and REQUEST generated; LANG and QUERY valid, so checking goes past them."""
    operation = tap_openapi["/tap/sync"][method]
    fixed = {"LANG": "ADQL", "QUERY": "SELECT TOP 3 objectId, ra, dec FROM dr.Object"}
    forbidden = ("Traceback", "dbname=", "passfile=", tap_cluster.cluster.coordinator_dsn)
    statuses: set[int] = set()

    @settings(max_examples=DEEP_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(query=fixed))
    def check(case: Any) -> None:
        response = case.call_and_validate(checks=[not_a_server_error], timeout=60)
        statuses.add(response.status_code)
        for text in forbidden:
            assert text not in response.text, f"the response to {case.query} contains {text!r}"

    check()
    assert 200 in statuses, "no generated request was valid: the fuzzing never got past the checks"


def test_adql_fragments_never_cause_a_server_error(tap_openapi: Any, tap_cluster: TapCluster) -> None:
    """Query texts made of ADQL pieces: they reach the parser, the translator and the workers."""
    operation = tap_openapi["/tap/sync"]["POST"]
    forbidden = ("Traceback", "dbname=", "passfile=", tap_cluster.cluster.coordinator_dsn)

    @settings(max_examples=DEEP_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        case=operation.as_strategy(query={"LANG": "ADQL"}),
        head=st.sampled_from(ADQL_HEADS),
        tokens=st.lists(st.sampled_from(ADQL_TOKENS), max_size=12),
        tail=st.text(max_size=5),
    )
    def check(case: Any, head: str, tokens: list[str], tail: str) -> None:
        query = head + " ".join(tokens) + tail
        case.query["QUERY"] = query
        response = case.call_and_validate(checks=[not_a_server_error], timeout=60)
        for text in forbidden:
            assert text not in response.text, f"the response to {query!r} contains {text!r}"

    check()
