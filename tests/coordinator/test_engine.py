"""The engine end to end on real PostgreSQL: what the correctness suite does not pin down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import NodeUnavailableError
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

    with QueryEngine(cluster.topology) as engine:
        with engine.query(cone) as result:
            first = sorted(result)
        assert first and engine.level_shapes.get(engine.translate(cone).tree) is not None
        assert coordinator_sessions() == 0  # the rows streamed from the workers alone

        def no_planning(*_args: object) -> None:
            raise AssertionError("the level was planned again")

        monkeypatch.setattr(planner, "split_level", no_planning)
        with engine.query(cone) as result:
            assert sorted(result) == first
        engine.refresh()
        assert engine.level_shapes.get(engine.translate(cone).tree) is None
