"""The direct path of repeated one-chunk queries, on real PostgreSQL: same answers, and it steps aside.

The correctness suite checks the direct answers of every one-chunk corpus
query against the reference; these tests pin down when the direct path must
not answer (moved metadata, a different director-index answer, a failed
worker) and that stopping early ends the worker statement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import NodeUnavailableError
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
        far_away = objects.iloc[[-1]].copy()  # its own position, so maybe another chunk than ``known``
        far_away["diaObjectId"] = newcomer
        far_away["ra"] = (far_away["ra"] + 0.9) % 360.0
        load_inputs(cluster.topology, "apdb.DiaObject", [far_away])
        assert _rows(engine, text) == [(known,), (newcomer,)]


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
