"""Failover: a worker stopping changes no answer with replication 2; with replication 1 the error names the chunks.

The cluster is a real one (a coordinator and 4 worker servers of their own,
:func:`tests.conftest.local_cluster`), because stopping a server is the
point.  It holds the simulated survey of the correctness suite (``apdb`` and
``dr``, chunk order 7) with replication 2, and one more deploy of the
``apdb`` schema as ``apdb_r1`` with replication 1 at chunk order 6.
Placement is shared by catalogs of the same chunk order and the number of
replicas of a chunk is fixed when it is first placed, so the replication-1
catalog needs an order of its own.

Expected answers come from the unsharded reference database of
:mod:`tests.query.reference` holding the same rows, computed before any
server is stopped.  The queries are a fixed, varied subset of the
correctness corpus (two per shape: aggregates, joins, cones, subqueries, set
operations...).  Nothing here measures time: the stop is ordered against the
queries with events, and a hang ends at the module's timeout.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import psycopg
import pytest

from adql import TableCatalog, translate
from dms_db import cluster as cluster_service
from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import NodeUnavailableError
from dms_db.local_cluster import LocalCluster
from dms_db.postgres_server import PostgresServer, ServerState
from dms_db.topology import Topology
from loaders.bulk_load import load_inputs
from sharding.coordinator import QueryEngine
from sharding.placement import read_placement
from tests.harness import DatabaseCluster, TestServer
from tests.query.compare import Answer, compare_rows, is_ordered, run_reference, tolerances
from tests.query.corpus import SHAPES, QueryCase, correctness_cases
from tests.query.dataset import SURVEY_CHUNK_ORDER, QueryDataset, load_cluster
from tests.query.reference import build_reference, coordinator_catalog

# A guard against a hung query taking the whole suite with it; no test asserts a duration.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SURVEY_CATALOGS = ("apdb", "dr")
CASES_PER_SHAPE = 2
STOP_BEFORE_QUERY = 5  # the stop starts as this query (0-based) starts, so it lands in the middle of the run
MIN_QUERIES_AFTER_STOP = 20
R1_CATALOG = "apdb_r1"
R1_CHUNK_ORDER = 6
REPLICATED_VICTIM = "worker-2"
UNREPLICATED_VICTIM = "worker-3"
_CHUNK_LIST = re.compile(r"no replica could run chunks? ([0-9, ]+)")


def failover_cases() -> list[QueryCase]:
    """Two cases of every shape, interleaved by shape, on the simulated survey only.

    TAP_SCHEMA cases are left out (the cluster's also describes ``apdb_r1``,
    which the reference does not hold), as are cases the engine may refuse.
    """
    by_shape: dict[str, list[QueryCase]] = {}
    for case in correctness_cases():
        if not case.catalogs and not case.may_reject and case.shape != "tap_schema":
            by_shape.setdefault(case.shape, []).append(case)
    picked = []
    for shape in SHAPES:
        cases = by_shape.get(shape, [])
        picked.append([cases[i * len(cases) // CASES_PER_SHAPE] for i in range(min(CASES_PER_SHAPE, len(cases)))])
    return [case for group in zip_longest(*picked) for case in group if case is not None]


@dataclass(frozen=True)
class Expected:
    """A case with its translated SQL's reference answer and how to compare with it."""

    case: QueryCase
    answer: Answer
    ordered: bool


@dataclass(frozen=True)
class FailoverCluster:
    """The loaded local cluster, its topology and catalog, the expected answers and the replication-1 rows."""

    local: LocalCluster
    topology: Topology
    catalog: TableCatalog
    expected: tuple[Expected, ...]
    r1_rows: int


@pytest.fixture(scope="module")
def failover_cluster(
    local_cluster: LocalCluster, pg_server: TestServer, query_dataset: QueryDataset
) -> Iterator[FailoverCluster]:
    """The survey with replication 2, ``apdb_r1.DiaObject`` with replication 1, and the reference answers."""
    survey = QueryDataset(tuple(c for c in query_dataset.catalogs if c.name in SURVEY_CATALOGS))
    topology = cluster_service.bring_up(local_cluster.config)
    load_cluster(DatabaseCluster(topology, local_cluster.config), survey, replication=2)
    deploy_schema_file(local_cluster.config, "apdb", name=R1_CATALOG, chunk_order=R1_CHUNK_ORDER)
    dia_objects = next(c for c in survey.catalogs if c.name == "apdb").tables["DiaObject"]
    report = load_inputs(topology, f"{R1_CATALOG}.DiaObject", [dia_objects], replication=1)
    assert report.rows == len(dia_objects)

    catalog = coordinator_catalog(topology.coordinator.dsn)
    reference_dsn = pg_server.create_database()
    try:
        build_reference(reference_dsn, survey)
        with psycopg.connect(reference_dsn, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = on")
            expected = []
            for case in failover_cases():
                translated = translate(case.adql, catalog)
                expected.append(Expected(case, run_reference(conn, translated.sql), is_ordered(translated.tree)))
    finally:
        pg_server.drop_database(reference_dsn)
    yield FailoverCluster(local_cluster, topology, catalog, tuple(expected), len(dia_objects))


def chunks_on(topology: Topology, chunk_order: int, node: str) -> set[int]:
    """Chunks of ``chunk_order`` with a replica on ``node``, read from the coordinator's placement."""
    with psycopg.connect(topology.coordinator.dsn) as conn:
        return {chunk for chunk, replicas in read_placement(conn, chunk_order).items() if node in replicas.nodes}


def run_engine(engine: QueryEngine, adql_text: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Column names and rows of a query run through the engine."""
    with engine.query(adql_text, max_rows=None) as result:
        names = tuple(c.name for c in result.columns)
        rows = list(result)
    return names, rows


def problem_with(engine: QueryEngine, expected: Expected) -> str | None:
    """None if the engine answers like the reference, else what went wrong (an exception included)."""
    try:
        names, rows = run_engine(engine, expected.case.adql)
    except Exception as exc:  # any failure is a wrong answer here; its type and message go in the report
        return f"raised {type(exc).__name__}: {exc}"
    if names != expected.answer.columns:
        return f"column names {names} != reference {expected.answer.columns}"
    return compare_rows(
        rows, expected.answer.rows, tolerances(expected.answer, expected.case.rel_tol), expected.ordered
    )


class ServerStopper:
    """Stops one server from its own thread when told to, and records when the stop began and ended."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.go = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="server-stopper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not self.go.wait(timeout=300) or self._cancelled:
            return
        self.started.set()
        try:
            self.server.stop()  # fast shutdown: running statements end with admin_shutdown
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        """Wait for the stop to finish; a stop not yet asked for is cancelled (the caller's checks catch that)."""
        if not self.go.is_set():
            self._cancelled = True
            self.go.set()
        self._thread.join(timeout=120)


def phase(started_after_stop: bool, ended_before_stop: bool) -> str:
    """``before``, ``during`` or ``after`` the stop, from the stopper's events seen at the query's start and end."""
    if ended_before_stop:
        return "before"
    return "after" if started_after_stop else "during"


def test_replication_2_answers_stay_right_while_a_worker_stops(failover_cluster: FailoverCluster) -> None:
    """Every query before, during and after a worker's server stops equals the reference."""
    topology = failover_cluster.topology
    assert chunks_on(topology, SURVEY_CHUNK_ORDER, REPLICATED_VICTIM), "the victim holds no chunk: nothing to fail over"
    victim = failover_cluster.local.server(REPLICATED_VICTIM)
    stopper = ServerStopper(victim)
    outcomes: list[tuple[str, Expected, str | None]] = []
    try:
        with QueryEngine(topology) as engine:
            for index, expected in enumerate(failover_cluster.expected):
                if index == STOP_BEFORE_QUERY:
                    stopper.go.set()
                started_after = stopper.done.is_set()
                problem = problem_with(engine, expected)
                outcomes.append((phase(started_after, not stopper.started.is_set()), expected, problem))
        stopper.join()
        assert stopper.error is None, f"stopping {REPLICATED_VICTIM} failed: {stopper.error}"
        victim_state = victim.state()
    finally:
        stopper.join()
        victim.start()
    assert victim_state is ServerState.STOPPED, f"{REPLICATED_VICTIM} was {victim_state.value} after the run"
    after = sum(1 for when, _, _ in outcomes if when == "after")
    assert after >= MIN_QUERIES_AFTER_STOP, f"only {after} queries ran with {REPLICATED_VICTIM} down"
    wrong = [
        f"[{when}] {expected.case.id} ({expected.case.shape}): {problem}\nADQL:\n{expected.case.adql}"
        for when, expected, problem in outcomes
        if problem is not None
    ]
    counts = {when: sum(1 for w, _, _ in outcomes if w == when) for when in ("before", "during", "after")}
    print(f"\nqueries by phase of the stop of {REPLICATED_VICTIM}: {counts}")
    assert not wrong, f"{len(wrong)} of {len(outcomes)} queries wrong ({counts}) with replication 2:\n" + "\n\n".join(
        wrong
    )


def listed_chunks(message: str) -> set[int]:
    """The chunk ids a NodeUnavailableError lists (it names at most 20, then says how many more)."""
    match = _CHUNK_LIST.search(message)
    return {int(c) for c in match.group(1).replace(" ", "").split(",") if c} if match else set()


def test_replication_1_error_names_the_unavailable_chunks(failover_cluster: FailoverCluster) -> None:
    """With the only replica of some chunks down, the query fails naming them; it answers again once back."""
    topology = failover_cluster.topology
    victim_chunks = chunks_on(topology, R1_CHUNK_ORDER, UNREPLICATED_VICTIM)
    assert victim_chunks, f"{UNREPLICATED_VICTIM} holds no chunk of {R1_CATALOG}: nothing would be unavailable"
    # COUNT(diaObjectId), not COUNT(*): the engine answers an unfiltered COUNT(*) from the coordinator's row counts.
    adql_text = f"SELECT COUNT(diaObjectId) AS n FROM {R1_CATALOG}.DiaObject"
    victim = failover_cluster.local.server(UNREPLICATED_VICTIM)
    with QueryEngine(topology) as engine:
        assert run_engine(engine, adql_text)[1] == [(failover_cluster.r1_rows,)]
        victim.stop()
        try:
            with pytest.raises(NodeUnavailableError) as raised:
                run_engine(engine, adql_text)
        finally:
            victim.start()
        message = str(raised.value)
        named = listed_chunks(message)
        assert named, f"the error names no chunk: {message}\nADQL: {adql_text}"
        assert named <= victim_chunks, (
            f"the error names chunks {sorted(named - victim_chunks)} that are not on {UNREPLICATED_VICTIM} "
            f"(it holds {sorted(victim_chunks)}): {message}"
        )
        assert run_engine(engine, adql_text)[1] == [(failover_cluster.r1_rows,)], "no answer once the worker is back"
