"""The engine end to end on real PostgreSQL: what the correctness suite does not pin down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import NodeUnavailableError
from dms_db.metadata import METADATA_EPOCH_SQL
from dms_db.topology import Topology
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from sharding.coordinator import QueryEngine
from tests.harness import DatabaseCluster


def _unreachable_workers(topology: Topology) -> Topology:
    """The same cluster, but no worker can be reached (port 1 refuses connections)."""
    dead = tuple(
        replace(w, dsn="host=127.0.0.1 port=1 dbname=nowhere user=dms connect_timeout=2") for w in topology.workers
    )
    return Topology(topology.coordinator, dead)


def test_count_star_of_a_whole_table_needs_no_worker(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    survey = simulate_survey(SimulationConfig(seed=3, n_objects=300, n_visits=4, radius_deg=1.0)).tables
    objects = survey["apdb.DiaObject"]
    load_inputs(cluster.topology, "apdb.DiaObject", [objects])

    with QueryEngine(_unreachable_workers(cluster.topology)) as engine:
        with engine.query("SELECT COUNT(*) AS n FROM apdb.DiaObject") as result:
            assert [c.name for c in result.columns] == ["n"]
            assert list(result) == [(len(objects),)]
        other_count = "SELECT COUNT(diaObjectId) AS n FROM apdb.DiaObject"  # must ask the workers
        with pytest.raises(NodeUnavailableError, match="chunk"), engine.query(other_count) as result:
            list(result)


def test_translations_are_reused_until_refresh(make_cluster: Callable[..., DatabaseCluster]) -> None:
    cluster = make_cluster(1)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    with QueryEngine(cluster.topology) as engine:
        text = "SELECT COUNT(*) AS n FROM apdb.DiaObject"
        assert engine.translate(text, None) is engine.translate(text, None)
        assert engine.translate(text, 5) is not engine.translate(text, None)  # MAXREC is part of the key
        before = engine.translate(text, None)
        engine.refresh()
        assert engine.translate(text, None) is not before


def test_a_repeated_query_reuses_its_plan_and_a_streamed_one_never_takes_a_coordinator_connection(
    make_cluster: Callable[..., DatabaseCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from sharding.coordinator import planner
    from sharding.coordinator.node_pools import APPLICATION_NAME

    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    survey = simulate_survey(SimulationConfig(seed=4, n_objects=300, n_visits=4, radius_deg=1.0)).tables
    objects = survey["apdb.DiaObject"]
    load_inputs(cluster.topology, "apdb.DiaObject", [objects])
    ra, dec = float(objects["ra"].iloc[0]), float(objects["dec"].iloc[0])
    cone = f"SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 0.1))"

    def coordinator_sessions() -> int:
        with psycopg.connect(cluster.coordinator_dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            ).fetchone()[0]

    with QueryEngine(cluster.topology, direct_path=False) as engine:  # the general path
        with engine.query(cone) as result:
            first = sorted(result)
        assert first and engine.level_shapes.get(engine.translate(cone).tree) is not None
        assert coordinator_sessions() == 0  # the rows streamed from the workers alone

        def no_planning(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("the level was planned again")

        # The split is made only for several chunks and the one-chunk SQL only for one: both
        # start from the chunk-local tree, and the layout is analysed for every new shape.
        for step in ("split_level", "chunk_local_select", "analyse_level"):
            monkeypatch.setattr(planner, step, no_planning)
        with engine.query(cone) as result:
            assert sorted(result) == first
        engine.refresh()
        assert engine.level_shapes.get(engine.translate(cone).tree) is None


def _loaded_survey(cluster: DatabaseCluster, seed: int) -> dict:
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    survey = simulate_survey(SimulationConfig(seed=seed, n_objects=300, n_visits=12, radius_deg=1.0)).tables
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]])
    load_inputs(cluster.topology, "apdb.DiaSource", [survey["apdb.DiaSource"]])
    return survey


def test_planning_leaves_the_kept_translations_as_they_were(make_cluster: Callable[..., DatabaseCluster]) -> None:
    """The planner skips copies of a level's tree where it changes nothing: every shape, run twice, must agree."""
    cluster = make_cluster(2)
    objects = _loaded_survey(cluster, seed=13)["apdb.DiaObject"]
    ra, dec = float(objects["ra"].iloc[0]), float(objects["dec"].iloc[0])
    object_id = int(objects["diaObjectId"].iloc[0])
    cone = f"1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, 0.5))"
    queries = [
        f"SELECT diaObjectId, ra FROM apdb.DiaObject WHERE {cone}",
        f"SELECT TOP 5 diaObjectId FROM apdb.DiaObject WHERE {cone}",
        "SELECT TOP 5 diaObjectId FROM apdb.DiaObject ORDER BY ra DESC, diaObjectId",
        "SELECT DISTINCT nDiaSources FROM apdb.DiaObject",
        "SELECT nDiaSources, COUNT(*) AS n FROM apdb.DiaObject GROUP BY nDiaSources",
        "SELECT COUNT(*) AS n FROM apdb.DiaSource AS s JOIN apdb.DiaObject AS o USING (diaObjectId)"
        f" WHERE 1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE({ra}, {dec}, 0.5))",
        f"SELECT diaSourceId FROM apdb.DiaSource WHERE diaObjectId = {object_id}",
        "SELECT diaObjectId FROM apdb.DiaObject WHERE diaObjectId IN (SELECT TOP 3 diaObjectId FROM apdb.DiaSource)",
        "WITH few AS (SELECT TOP 3 diaObjectId FROM apdb.DiaObject) SELECT COUNT(*) AS n FROM few",
        "SELECT diaObjectId FROM apdb.DiaObject WHERE ra < 0 UNION SELECT diaObjectId FROM apdb.DiaObject",
    ]
    with QueryEngine(cluster.topology, direct_path=False) as engine:  # the general path
        with engine.query(queries[0]) as result:  # warm: the first query reads the epoch and empties the caches
            list(result)
        for query in queries:
            kept = engine.translate(query)
            before = kept.tree.sql(dialect="postgres")
            with engine.query(query) as result:
                first = sorted(result)
            assert kept.tree.sql(dialect="postgres") == before, query
            assert engine.translate(query) is kept
            with engine.query(query) as result:
                again = sorted(result)
            assert kept.tree.sql(dialect="postgres") == before, query
            if "TOP" not in query:  # rows without an order may differ between runs
                assert again == first, query


def test_one_chunk_levels_run_whole_on_a_worker_and_look_ups_take_no_session(
    make_cluster: Callable[..., DatabaseCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A light curve (ORDER BY) over one chunk needs no gather and merge; its director look-up no session."""
    from sharding.coordinator.dispatch import Dispatcher

    cluster = make_cluster(2)
    sources = _loaded_survey(cluster, seed=5)["apdb.DiaSource"]
    object_id = int(sources["diaObjectId"].value_counts().index[0])
    curve = sources[sources["diaObjectId"] == object_id].sort_values(["midpointMjdTai", "diaSourceId"])
    assert len(curve) >= 2

    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the query used the coordinator session")

    monkeypatch.setattr(Dispatcher, "gather", refused)
    monkeypatch.setattr(Dispatcher, "coordinator_session", refused)
    query = (
        "SELECT diaSourceId, midpointMjdTai FROM apdb.DiaSource "
        f"WHERE diaObjectId = {object_id} ORDER BY midpointMjdTai, diaSourceId"
    )
    with QueryEngine(cluster.topology) as engine, engine.query(query) as result:
        rows = list(result)
    assert [r[0] for r in rows] == curve["diaSourceId"].tolist()


def test_a_warm_engine_reads_the_metadata_epoch_while_the_worker_statement_runs(
    make_cluster: Callable[..., DatabaseCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm engine does not wait for the epoch before asking the workers (but still reads it every query).

    The epoch read below answers only once a worker statement has begun: were
    the read still awaited first, the query would never get that far.
    """
    import asyncio
    import threading

    from sharding.coordinator.execution import Execution

    cluster = make_cluster(1)
    _loaded_survey(cluster, seed=9)
    cone = "SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(60, -30, 0.5))"
    worker_asked = threading.Event()
    epoch_reads: list[bool] = []  # per epoch read: had a worker statement begun before it answered
    opening = Execution.open_cursor

    async def noting_opening(self: Execution, *args: object, **kwargs: object) -> object:
        worker_asked.set()
        return await opening(self, *args, **kwargs)

    monkeypatch.setattr(Execution, "open_cursor", noting_opening)
    with QueryEngine(cluster.topology, direct_path=False) as engine:  # the general path
        with engine.query(cone) as result:
            expected = sorted(result)  # cold: the epoch is read first, then the catalog and placement
        assert expected
        asked = engine.dispatcher.coordinator_rows

        async def answering_after_the_worker(query: object, params: object = ()) -> list[tuple]:
            if query == METADATA_EPOCH_SQL:
                for _ in range(500):
                    if worker_asked.is_set():
                        break
                    await asyncio.sleep(0.01)
                epoch_reads.append(worker_asked.is_set())
            return await asked(query, params)

        engine.dispatcher.coordinator_rows = answering_after_the_worker  # type: ignore[method-assign]
        for _ in range(2):
            worker_asked.clear()
            with engine.query(cone) as result:
                assert sorted(result) == expected
    assert epoch_reads == [True, True]


def test_a_query_cancelled_while_its_epoch_read_is_pending_ends_its_worker_statements(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """Rows are held back until the epoch is confirmed; a caller that gives up meanwhile must not strand them.

    Small batches keep the worker's attempt waiting for the caller, so a stream
    that was never closed would leave its worker transaction open.  (The engine
    closes it explicitly; asyncio's finalizer of the abandoned generators would
    too, later, once they are collected.)
    """
    import asyncio

    import psycopg

    from sharding.coordinator.execution import Execution
    from sharding.coordinator.node_pools import APPLICATION_NAME

    cluster = make_cluster(1)
    _loaded_survey(cluster, seed=10)
    query = "SELECT diaSourceId, band FROM apdb.DiaSource"

    def open_worker_transactions() -> int:
        with psycopg.connect(cluster.topology.workers[0].dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'",
                (APPLICATION_NAME,),
            ).fetchone()[0]

    async def main() -> list[tuple]:
        engine = QueryEngine(cluster.topology)
        engine.dispatcher.batch_rows = 10
        try:
            async with engine.query_async(query) as result:
                expected = [row async for row in result.rows]
            assert len(expected) > 30
            asked = engine.dispatcher.coordinator_rows
            release = asyncio.Event()

            async def epoch_when_released(statement: object, params: object = ()) -> list[tuple]:
                if statement == METADATA_EPOCH_SQL:
                    await release.wait()
                return await asked(statement, params)

            engine.dispatcher.coordinator_rows = epoch_when_released  # type: ignore[method-assign]
            opened = asyncio.Event()
            opening = Execution.open_cursor

            async def noting_opening(self: Execution, *args: object, **kwargs: object) -> object:
                cursor = await opening(self, *args, **kwargs)
                opened.set()
                return cursor

            Execution.open_cursor = noting_opening  # type: ignore[method-assign]
            try:

                async def run() -> None:
                    async with engine.query_async(query) as result:
                        [row async for row in result.rows]

                task = asyncio.create_task(run())
                await asyncio.wait_for(opened.wait(), 30)
                await asyncio.sleep(0.2)  # the first batch is in; the query waits for the epoch
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            finally:
                Execution.open_cursor = opening  # type: ignore[method-assign]
            for _ in range(100):
                if await asyncio.to_thread(open_worker_transactions) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(open_worker_transactions) == 0
            release.set()
            async with engine.query_async(query) as result:  # the engine still works
                return sorted(expected) == sorted([row async for row in result.rows])
        finally:
            await engine.dispatcher.close()

    assert asyncio.run(main()) is True


@pytest.mark.parametrize(
    ("adql", "max_rows", "expected_count"),
    [
        ("SELECT TOP 25 diaSourceId, band FROM apdb.DiaSource", None, lambda total: 25),
        ("SELECT diaSourceId, band FROM apdb.DiaSource", 40, lambda total: 40),  # TAP's MAXREC
        ("SELECT diaSourceId, band FROM apdb.DiaSource OFFSET 30", None, lambda total: total - 30),
        ("SELECT TOP 7 diaSourceId, band FROM apdb.DiaSource OFFSET 30", 100, lambda total: 7),
        ("SELECT TOP 0 diaSourceId, band FROM apdb.DiaSource", None, lambda total: 0),
    ],
)
def test_a_limit_without_order_streams_a_cut_of_the_workers_rows_without_a_merge(
    make_cluster: Callable[..., DatabaseCluster],
    monkeypatch: pytest.MonkeyPatch,
    adql: str,
    max_rows: int | None,
    expected_count: Callable[[int], int],
) -> None:
    """Any rows answer a LIMIT without ORDER BY: as many as asked, all distinct, all from the table.

    The rows come straight from the workers (each asked for OFFSET + LIMIT at
    most) and the caller's side cuts the stream, with no gather and merge on
    the coordinator.
    """
    from sharding.coordinator.dispatch import Dispatcher

    cluster = make_cluster(2)
    sources = _loaded_survey(cluster, seed=12)["apdb.DiaSource"]
    every_row = {(int(i), b) for i, b in zip(sources["diaSourceId"], sources["band"], strict=True)}
    # Batches of 7 rows: the skip and the cut fall inside and across batches.
    with QueryEngine(cluster.topology, batch_rows=7) as engine:
        assert len(engine.chunk_map(engine.catalog().layout("apdb").chunk_order).placed(None)) > 1

        def refused(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("the query was gathered for a merge")

        monkeypatch.setattr(Dispatcher, "gather", refused)
        with engine.query(adql, max_rows=max_rows) as result:
            rows = [(int(i), b) for i, b in result]
    assert len(rows) == expected_count(len(every_row))
    assert len(set(rows)) == len(rows)
    assert set(rows) <= every_row


def test_worker_transactions_end_after_the_caller_has_the_rows(
    make_cluster: Callable[..., DatabaseCluster], caplog: pytest.LogCaptureFixture
) -> None:
    """The ROLLBACK runs after the last row is handed over, but it does run (not left to the pool)."""
    import logging
    import time

    import psycopg

    from sharding.coordinator.node_pools import APPLICATION_NAME

    cluster = make_cluster(2)
    _loaded_survey(cluster, seed=6)

    def open_transactions() -> int:
        with psycopg.connect(cluster.coordinator_dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'"
                " AND pid <> pg_backend_pid()",
                (APPLICATION_NAME,),
            ).fetchone()[0]

    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    with QueryEngine(cluster.topology) as engine:
        for _ in range(3):
            with engine.query("SELECT diaSourceId, band FROM apdb.DiaSource") as result:
                assert len(list(result)) > 0
        deadline = time.monotonic() + 10
        while open_transactions() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_transactions() == 0
    assert not [r for r in caplog.records if "rolling back returned connection" in r.getMessage()]


def test_a_pooled_worker_connection_that_died_is_replaced_without_failing_the_query(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """Replication 1: a connection killed while idle in the pool must not make its worker look down."""
    import psycopg

    from sharding.coordinator.node_pools import APPLICATION_NAME

    cluster = make_cluster(1)
    _loaded_survey(cluster, seed=7)
    query = "SELECT COUNT(diaSourceId) AS n FROM apdb.DiaSource"
    with QueryEngine(cluster.topology) as engine:
        with engine.query(query) as result:
            expected = list(result)
        with psycopg.connect(cluster.coordinator_dsn, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname <> current_database()",
                (APPLICATION_NAME,),
            ).fetchone()[0]
        assert killed >= 1
        with engine.query(query) as result:  # at once: the pool lends the dead connection unchecked
            assert list(result) == expected


def test_an_unreachable_coordinator_is_a_clear_error_for_look_ups_and_merges(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """The coordinator serves the catalog, director look-ups and merges; unreachable, it is a clear error.

    A query that needs only the workers is still answered from the metadata read before.
    """
    from dms_db.errors import DmsError

    cluster = make_cluster(1)
    objects = _loaded_survey(cluster, seed=8)["apdb.DiaObject"]
    object_id = int(objects["diaObjectId"].iloc[0])
    dead_coordinator = replace(cluster.topology.coordinator, dsn="host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    cone = "SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(60, -30, 2))"
    with QueryEngine(cluster.topology) as reachable:
        with reachable.query(cone) as result:
            in_cone = sorted(result)
        warm = (reachable._catalog, reachable._chunk_maps, reachable._metadata_epoch)
    assert in_cone
    with QueryEngine(Topology(dead_coordinator, cluster.topology.workers)) as engine:
        # What the engine had read before the coordinator went away.
        engine._catalog, engine._chunk_maps, engine._metadata_epoch = warm
        with engine.query(cone) as result:  # needs the workers alone: answered from what was read
            assert sorted(result) == in_cone
        asked = engine.dispatcher.coordinator_rows

        async def not_again(query: object, params: object = ()) -> list[tuple]:
            assert query != METADATA_EPOCH_SQL, "the failed coordinator was asked again at once"
            return await asked(query, params)

        engine.dispatcher.coordinator_rows = not_again  # type: ignore[method-assign]
        with engine.query(cone) as result:
            assert sorted(result) == in_cone
        for query in (
            f"SELECT ra FROM apdb.DiaObject WHERE diaObjectId = {object_id}",  # director index look-up
            "SELECT COUNT(diaObjectId) AS n FROM apdb.DiaObject",  # merge in a coordinator session
        ):
            with pytest.raises(NodeUnavailableError) as caught, engine.query(query) as result:
                list(result)
            assert isinstance(caught.value, DmsError)
            assert "the coordinator database cannot be used" in str(caught.value)
            assert "cluster status" in (caught.value.hint or "")
    unread = QueryEngine(Topology(dead_coordinator, cluster.topology.workers))  # nothing read yet
    with unread, pytest.raises(NodeUnavailableError, match="the coordinator database cannot be used"):
        unread.query("SELECT ra FROM apdb.DiaObject")


def _objects_at(ra_center: float, seed: int, id_offset: int):
    survey = simulate_survey(
        SimulationConfig(seed=seed, n_objects=200, n_visits=4, radius_deg=0.5, ra_center=ra_center, dec_center=-30.0)
    ).tables
    objects = survey["apdb.DiaObject"].copy()
    objects["diaObjectId"] += id_offset
    return objects


def test_a_running_engine_sees_chunks_and_catalogs_added_after_it_started(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    first = _objects_at(60.0, seed=5, id_offset=0)
    load_inputs(cluster.topology, "apdb.DiaObject", [first])
    counted = "SELECT COUNT(diaObjectId) AS n FROM apdb.DiaObject WHERE dec < 0"  # read on the workers

    with QueryEngine(cluster.topology) as engine:
        with engine.query(counted) as result:
            assert list(result) == [(len(first),)]
        # A nightly load into sky the cluster has no chunk of yet, while the engine (a TAP service) runs.
        second = _objects_at(200.0, seed=6, id_offset=10**15)
        load_inputs(cluster.topology, "apdb.DiaObject", [second])
        new_sky = "SELECT diaObjectId FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(200, -30, 1))"
        with engine.query(new_sky) as result:  # planned over the new chunks alone
            assert sorted(r[0] for r in result) == sorted(int(i) for i in second["diaObjectId"])
        with engine.query(counted) as result:
            assert list(result) == [(len(first) + len(second),)]
        # A catalog deployed while the engine runs can be queried at once.
        deploy_schema_file(cluster.config, "dr", chunk_order=6)
        with engine.query("SELECT COUNT(objectId) AS n FROM dr.Object") as result:
            assert list(result) == [(0,)]


@pytest.mark.parametrize("replication", [1, 2])
def test_a_worker_given_every_chunk_it_holds_reads_its_tables_whole(
    make_cluster: Callable[..., DatabaseCluster], monkeypatch: pytest.MonkeyPatch, replication: int
) -> None:
    """No per-row chunk filter where it selects every row; kept where a worker holds chunks it is not given."""
    from sharding.coordinator.dispatch import Dispatcher
    from sharding.coordinator.locality import CHUNK_LIST_SENTINEL

    cluster = make_cluster(3)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    survey = simulate_survey(SimulationConfig(seed=8, n_objects=300, n_visits=12, radius_deg=2.0)).tables
    for table in ("apdb.DiaObject", "apdb.DiaSource"):
        load_inputs(cluster.topology, table, [survey[table]], replication=replication)
    sent: list[str] = []
    scatter = Dispatcher.scatter

    def recording_scatter(self, sql_for, chunks, chunk_map):
        def recorded(chunk_ids):
            sent.append(sql_for(chunk_ids))
            return sent[-1]

        return scatter(self, recorded, chunks, chunk_map)

    monkeypatch.setattr(Dispatcher, "scatter", recording_scatter)
    sources = survey["apdb.DiaSource"]
    with QueryEngine(cluster.topology) as engine:
        with engine.query("SELECT band, COUNT(*) AS n FROM apdb.DiaSource GROUP BY band") as result:
            assert dict(result) == sources.groupby("band").size().to_dict()
        joined = (
            "SELECT COUNT(*) AS n FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId"
        )
        with engine.query(joined) as result:
            assert list(result) == [(len(sources),)]
    worker_statements = [text for text in sent if "DiaSource" in text]
    assert len(worker_statements) >= 2 * 3  # both queries, on every worker
    filtered = [text for text in worker_statements if '"chunk_id" IN (' in text]
    if replication == 1:
        assert filtered == [] and all(CHUNK_LIST_SENTINEL not in text for text in worker_statements)
    else:  # every worker holds chunks another one is given
        assert filtered == worker_statements
