"""Loads give the same rows as one plain PostgreSQL, once, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.catalog_service import deploy_schema_file
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from loaders.survey_load import LOAD_ORDER
from tests.harness import DatabaseCluster, TestServer
from tests.loaders.reference import (
    count_everywhere,
    create_reference_schema,
    insert_reference_rows,
    read_cluster,
    read_reference,
)


@pytest.fixture(scope="module")
def survey() -> dict[str, pd.DataFrame]:
    """A small simulated survey whose area crosses RA 0 and reaches high declination."""
    config = SimulationConfig(seed=7, ra_center=1.0, dec_center=-60.0, radius_deg=2.0, n_objects=2500, n_visits=16)
    return simulate_survey(config).tables


@pytest.mark.parametrize(("workers", "replication"), [(1, 1), (4, 1), (4, 2)])
def test_every_table_equals_the_unsharded_reference(
    make_cluster: Callable[..., DatabaseCluster],
    pg_server: TestServer,
    survey: dict[str, pd.DataFrame],
    workers: int,
    replication: int,
) -> None:
    cluster = make_cluster(workers, replication)
    reference = pg_server.create_database()
    catalogs = {}
    for name in ("apdb", "dr"):
        deploy_schema_file(cluster.config, name, chunk_order=7)
        catalogs[name] = load_catalog_schema(shipped_schema_path(name))
        create_reference_schema(reference, catalogs[name])
    for target in LOAD_ORDER:
        schema_name, table_name = target.split(".")
        frame = survey[target]
        report = load_inputs(cluster.topology, target, [frame], replication=replication, batch_rows=700)
        assert report.rows == len(frame)
        insert_reference_rows(reference, schema_name, catalogs[schema_name].table(table_name), frame)

    for target in LOAD_ORDER:
        schema_name, table_name = target.split(".")
        table = catalogs[schema_name].table(table_name)
        expected = read_reference(reference, schema_name, table)
        actual = read_cluster(cluster, schema_name, table)
        assert len(actual) == len(survey[target]) > 0, target
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False, obj=target)
        copies = sum(count_everywhere(cluster, schema_name, table_name))
        expected_copies = len(expected) * (workers if table.kind.value == "replicated" else replication)
        assert copies == expected_copies, target

    with psycopg.connect(cluster.coordinator_dsn) as conn:
        counted = dict(
            conn.execute(
                "SELECT table_name, sum(row_count) FROM dms.chunk_row_count WHERE schema_name = 'apdb' GROUP BY 1"
            ).fetchall()
        )
        indexed = conn.execute("SELECT count(*) FROM dms.director_index WHERE table_name = 'DiaObject'").fetchone()[0]
    assert counted["DiaSource"] == len(survey["apdb.DiaSource"])
    assert indexed == len(survey["apdb.DiaObject"])
    pg_server.drop_database(reference)


def test_overlap_partitions_hold_neighbours_within_the_margin(
    make_cluster: Callable[..., DatabaseCluster], survey: dict[str, pd.DataFrame]
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=7)
    load_inputs(cluster.topology, "apdb.DiaObject", [survey["apdb.DiaObject"]])
    checked = 0
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            # every overlap row lies outside its chunk but within the margin (60") of it
            rows = conn.execute(
                'SELECT o.chunk_id, o.ra, o.dec, m.chunk_id FROM apdb."DiaObject__overlap" o '
                'JOIN apdb."DiaObject" m USING ("diaObjectId")'
            ).fetchall()
        for overlap_chunk, _ra, _dec, own_chunk in rows:
            assert overlap_chunk != own_chunk
            checked += 1
    # with 2500 objects in ~12 deg2 and chunks of ~0.2 deg2, some rows are near an edge
    assert checked > 0


def test_the_same_input_twice_loads_once(make_cluster: Callable[..., DatabaseCluster], tmp_path: Path) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "dr", chunk_order=6)
    frame = simulate_survey(SimulationConfig(n_objects=800, n_visits=6)).tables["dr.Object"]
    path = tmp_path / "objects.parquet"
    frame.to_parquet(path)
    first = load_inputs(cluster.topology, "dr.Object", [path])
    second = load_inputs(cluster.topology, "dr.Object", [path])
    assert not first.already_loaded and second.already_loaded
    assert second.load_id == first.load_id and second.rows == len(frame)
    assert sum(count_everywhere(cluster, "dr", "Object")) == len(frame)
    copy = tmp_path / "same-bytes-other-name.parquet"
    copy.write_bytes(path.read_bytes())
    assert load_inputs(cluster.topology, "dr.Object", [copy]).already_loaded
