"""The direct path of repeated one-chunk queries, on real PostgreSQL: same answers, and it steps aside.

The correctness suite checks the direct answers of every one-chunk corpus
query against the reference; these tests pin down when the direct path must
not answer (moved metadata, a different director-index answer, a failed
worker) and that stopping early ends the worker statement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import NodeUnavailableError
from dms_db.metadata import METADATA_EPOCH_SQL
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from sharding.coordinator import QueryEngine
from sharding.coordinator.direct import APPLICATION_NAME
from tests.harness import DatabaseCluster


def _survey(cluster: DatabaseCluster, seed: int, replication: int = 1, chunk_order: int = 6) -> dict:
    deploy_schema_file(cluster.config, "apdb", chunk_order=chunk_order)
    survey = simulate_survey(SimulationConfig(seed=seed, n_objects=300, n_visits=12, radius_deg=1.0)).tables
    for table in ("apdb.DiaObject", "apdb.DiaSource"):
        load_inputs(cluster.topology, table, [survey[table]], replication=replication)
    return survey


def _rows(engine: QueryEngine, text: str) -> list[tuple]:
    with engine.query(text) as result:
        return list(result)


def _answered_directly(engine: QueryEngine, text: str) -> tuple[bool, list[tuple]]:
    before = engine.direct_answers
    rows = _rows(engine, text)
    return engine.direct_answers == before + 1, rows


def test_a_repeated_one_chunk_query_is_answered_directly_with_the_general_paths_rows(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(3)
    survey = _survey(cluster, seed=21)
    objects, sources = survey["apdb.DiaObject"], survey["apdb.DiaSource"]
    busiest = int(sources["diaObjectId"].value_counts().index[0])
    ra, dec = float(objects["ra"].iloc[0]), float(objects["dec"].iloc[0])
    texts = [
        f"SELECT diaObjectId, ra FROM apdb.DiaObject WHERE CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 0.02)) = 1",
        f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {busiest}",
        f"SELECT diaSourceId, midpointMjdTai, band, psfFlux FROM apdb.DiaSource WHERE diaObjectId = {busiest} "
        "ORDER BY midpointMjdTai, diaSourceId",
        f"SELECT band, COUNT(*) AS n FROM apdb.DiaSource WHERE diaObjectId = {busiest} GROUP BY band ORDER BY band",
        f"SELECT TOP 2 diaSourceId FROM apdb.DiaSource WHERE diaObjectId = {busiest} ORDER BY diaSourceId DESC",
    ]
    with QueryEngine(cluster.topology) as engine:
        for text in texts:
            general = _rows(engine, text)
            assert general, text
            assert engine.direct_plan(text) is not None, text
            for _ in range(2):  # prepared on the worker connection the first time, then only executed
                direct, rows = _answered_directly(engine, text)
                assert direct, text
                assert rows == general, text
        # Several chunks (a whole-table aggregate) are never answered directly.
        whole = "SELECT band, COUNT(*) AS n FROM apdb.DiaSource GROUP BY band"
        _rows(engine, whole)
        assert engine.direct_plan(whole) is None


def test_the_direct_path_steps_aside_when_the_metadata_moves(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2)
    objects = _survey(cluster, seed=22)["apdb.DiaObject"]
    text = f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(objects['diaObjectId'].iloc[0])}"
    with QueryEngine(cluster.topology) as engine:
        expected = _rows(engine, text)
        with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
            conn.execute("UPDATE dms.metadata_epoch SET epoch = epoch + 1")  # as a deploy or a load would
        direct, rows = _answered_directly(engine, text)
        assert not direct
        assert rows == expected
        direct, rows = _answered_directly(engine, text)  # planned again under the new epoch
        assert direct
        assert rows == expected


def test_a_director_key_that_was_not_there_when_planned_is_found(make_cluster: Callable[..., DatabaseCluster]) -> None:
    """The look-ups are asked again beside every direct answer: an object loaded since is not missed."""
    cluster = make_cluster(2)
    objects = _survey(cluster, seed=23)["apdb.DiaObject"]
    known = int(objects["diaObjectId"].iloc[0])
    newcomer = int(objects["diaObjectId"].max()) + 1
    text = f"SELECT diaObjectId FROM apdb.DiaObject WHERE diaObjectId IN ({known}, {newcomer}) ORDER BY diaObjectId"
    with QueryEngine(cluster.topology) as engine:
        assert _rows(engine, text) == [(known,)]
        assert _answered_directly(engine, text) == (True, [(known,)])
        # At the place of the object farthest from ``known`` (~2 deg on a 1 deg radius survey, chunks
        # of order 6 under 1 deg): another chunk, already placed, so the placement does not change.
        separation = (objects["ra"] - objects["ra"].iloc[0]) ** 2 + (objects["dec"] - objects["dec"].iloc[0]) ** 2
        far_away = objects.loc[[separation.idxmax()]].copy()
        far_away["diaObjectId"] = newcomer
        with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
            epoch = conn.execute(METADATA_EPOCH_SQL).fetchone()
            load_inputs(cluster.topology, "apdb.DiaObject", [far_away])
            conn.execute("UPDATE dms.metadata_epoch SET epoch = %s", epoch)  # only the look-up tells now
        assert _answered_directly(engine, text) == (False, [(known,), (newcomer,)])


def _refuse_connections(cluster: DatabaseCluster, worker_name: str) -> None:
    """Make one worker unusable: its database refuses new connections and its sessions are ended."""
    dsn = {w.name: w.dsn for w in cluster.topology.workers}[worker_name]
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )


def test_a_failed_worker_sends_the_query_to_another_replica(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2, 2)
    objects = _survey(cluster, seed=24, replication=2)["apdb.DiaObject"]
    text = f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(objects['diaObjectId'].iloc[0])}"
    with QueryEngine(cluster.topology) as engine:
        expected = _rows(engine, text)
        plan = engine.direct_plan(text)
        assert plan is not None and len(plan.replicas) == 2
        assert _answered_directly(engine, text) == (True, expected)
        _refuse_connections(cluster, plan.replicas[0])
        assert _rows(engine, text) == expected  # the general path, on the other replica
        direct, rows = _answered_directly(engine, text)  # directly again, from the replica still up
        assert direct
        assert rows == expected


def test_with_one_replica_a_failed_worker_is_the_general_paths_error(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(2)
    objects = _survey(cluster, seed=25)["apdb.DiaObject"]
    text = f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(objects['diaObjectId'].iloc[0])}"
    with QueryEngine(cluster.topology) as engine:
        _rows(engine, text)
        plan = engine.direct_plan(text)
        assert plan is not None
        _refuse_connections(cluster, plan.replicas[0])
        with pytest.raises(NodeUnavailableError, match="chunk"):
            _rows(engine, text)


def test_stopping_a_direct_answer_early_ends_its_worker_statement(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(1)
    sources = _survey(cluster, seed=26, chunk_order=2)["apdb.DiaSource"]  # chunks of ~15 deg: one holds the cone
    ra, dec = float(sources["ra"].median()), float(sources["dec"].median())
    text = f"SELECT diaSourceId FROM apdb.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 0.6)) = 1"
    worker_dsn = cluster.topology.workers[0].dsn
    with QueryEngine(cluster.topology, batch_rows=4) as engine:
        everything = _rows(engine, text)
        assert len(everything) > 12, "the cone must span several batches"
        assert engine.direct_plan(text) is not None
        before = engine.direct_answers
        result = engine.query(text)
        assert engine.direct_answers == before + 1
        first = [next(iter(result)) for _ in range(3)]
        result.close()
        assert set(first) <= set(everything)
        with psycopg.connect(worker_dsn) as conn:
            for _ in range(50):  # the cancel is asynchronous on the server side
                busy = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'",
                    (APPLICATION_NAME,),
                ).fetchone()
                if busy == (0,):
                    break
                time.sleep(0.1)
            assert busy == (0,)
        # The connection given back serves the next answer, whole, in batches of four.
        assert sorted(_answered_directly(engine, text)[1]) == sorted(everything)


def _terminate_direct_sessions(cluster: DatabaseCluster) -> int:
    with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()[0]


def test_connections_that_died_while_idle_are_replaced_without_leaving_the_direct_path(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """A restarted worker ends the kept connections: the next direct answer reconnects, nothing is avoided."""
    cluster = make_cluster(1)
    objects = _survey(cluster, seed=27)["apdb.DiaObject"]
    text = f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(objects['diaObjectId'].iloc[0])}"
    with QueryEngine(cluster.topology) as engine:
        expected = _rows(engine, text)
        assert _answered_directly(engine, text) == (True, expected)
        assert _terminate_direct_sessions(cluster) >= 2  # the worker's and the coordinator's
        time.sleep(0.2)  # let the backends go
        for _ in range(2):  # new connections, then those kept from the answer before
            assert _answered_directly(engine, text) == (True, expected)


def test_an_unreachable_coordinator_sends_direct_answers_to_the_general_path(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """Workers-only queries go on from cached metadata there; nothing is kept under an epoch never confirmed."""
    cluster = make_cluster(2)
    objects = _survey(cluster, seed=28)["apdb.DiaObject"]
    ra, dec = float(objects["ra"].iloc[0]), float(objects["dec"].iloc[0])
    text = f"SELECT diaObjectId FROM apdb.DiaObject WHERE CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 0.02)) = 1"
    dbname = psycopg.conninfo.conninfo_to_dict(cluster.coordinator_dsn)["dbname"]
    with QueryEngine(cluster.topology) as engine:
        expected = _rows(engine, text)
        assert _answered_directly(engine, text) == (True, expected)
        with psycopg.connect(cluster.topology.workers[0].dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
            try:
                time.sleep(0.2)
                assert _answered_directly(engine, text) == (False, expected)
                assert engine.direct_plan(text) is None  # the epoch read failed: not kept again
                assert _answered_directly(engine, text) == (False, expected)
            finally:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')


def test_a_direct_statement_is_prepared_once_per_connection(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(1)
    objects = _survey(cluster, seed=29)["apdb.DiaObject"]
    text = f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(objects['diaObjectId'].iloc[0])}"
    with QueryEngine(cluster.topology) as engine:
        expected = _rows(engine, text)
        for _ in range(3):
            assert _answered_directly(engine, text) == (True, expected)
        # The runner's one worker connection (private: the server shows prepared statements only to their session).
        (kept,) = engine._direct._idle[cluster.topology.workers[0].name]  # type: ignore[union-attr]
        statements = kept.conn.execute(
            "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements"
        ).fetchall()
        assert len(statements) == 1 and statements[0][0].startswith("dms_direct_")
        assert statements[0][1] == 3  # prepared by the first direct answer, executed by all three


def test_threads_share_the_direct_path_and_get_their_own_answers(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(3)
    objects = _survey(cluster, seed=30)["apdb.DiaObject"]
    texts = [f"SELECT * FROM apdb.DiaObject WHERE diaObjectId = {int(i)}" for i in objects["diaObjectId"].iloc[:6]]
    with QueryEngine(cluster.topology) as engine:
        expected = {text: _rows(engine, text) for text in texts}
        before = engine.direct_answers
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda text: (text, _rows(engine, text)), texts * 10))
        assert all(rows == expected[text] for text, rows in answers)
        assert engine.direct_answers == before + len(answers)
