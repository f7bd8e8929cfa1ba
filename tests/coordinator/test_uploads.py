"""Uploaded tables (TAP_UPLOAD) joined with sharded tables, checked against one unsharded PostgreSQL.

The reference holds the same catalog rows in plain tables and the upload as
a real table ``"TAP_UPLOAD".<name>``, so the same ADQL, translated against a
catalog that lists the upload, runs unchanged on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql

from adql import ColumnInfo, translate
from dms_db.errors import UserError
from loaders.simulate import SimulationConfig, simulate_survey
from sharding import regions
from sharding.coordinator import QueryEngine
from sharding.coordinator.uploads import UploadedTable, _chunks_near, upload_table_info
from tests.harness import DatabaseCluster, TestServer
from tests.query.compare import compare_rows, run_reference, tolerances
from tests.query.dataset import CatalogData, QueryDataset, load_cluster
from tests.query.reference import build_reference, coordinator_catalog

RADIUS_ARCSEC = 2.0


def _upload(objects) -> UploadedTable:
    """Positions near 40 catalog objects (1 arcsec off), 20 empty-sky ones, a NULL and a NaN position."""
    rng = np.random.default_rng(11)
    picked = objects.sample(min(40, len(objects)), random_state=5)
    n = len(picked)
    ra = picked["ra"].to_numpy() + rng.normal(0, 1 / 3600, n)
    dec = picked["dec"].to_numpy() + rng.normal(0, 1 / 3600, n)
    ra = np.concatenate([ra, rng.uniform(0, 360, 20)]) % 360.0
    dec = np.concatenate([dec, rng.uniform(-89, 89, 20)])
    ids = [int(i) for i in picked["diaObjectId"]] + [-i for i in range(1, 21)]
    rows: list[tuple] = [
        (i, ids[i], float(r), float(d), f"src {i}") for i, (r, d) in enumerate(zip(ra, dec, strict=True))
    ]
    rows += [(1000, None, None, None, "no position"), (1001, 7, float("nan"), 10.0, "nan ra")]
    columns = (
        ColumnInfo("id", "int"),
        ColumnInfo("objid", "long"),
        ColumnInfo("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
        ColumnInfo("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
        ColumnInfo("label", "char", arraysize="*"),
    )
    return UploadedTable("mine", columns, rows, ra_column="ra", dec_column="dec")


@pytest.fixture(scope="module")
def survey():
    return simulate_survey(SimulationConfig(seed=8, n_objects=2000, n_visits=6, radius_deg=2.0)).tables


@pytest.fixture(scope="module")
def uploads_setup(pg_server: TestServer, survey) -> Iterator[tuple[DatabaseCluster, str, UploadedTable]]:
    from tests.harness import build_database_cluster, drop_database_cluster

    data = CatalogData(
        "apdb", "apdb", 6, {"DiaObject": survey["apdb.DiaObject"], "DiaSource": survey["apdb.DiaSource"]}
    )
    dataset = QueryDataset((data,))
    cluster = build_database_cluster(pg_server, 4, 1)
    load_cluster(cluster, dataset, 1)
    reference = pg_server.create_database()
    build_reference(reference, dataset)
    upload = _upload(survey["apdb.DiaObject"])
    with psycopg.connect(reference) as conn:
        conn.execute('CREATE SCHEMA "TAP_UPLOAD"')
        conn.execute(
            'CREATE TABLE "TAP_UPLOAD".mine (id integer, objid bigint, ra double precision, dec double precision, '
            "label text)"
        )
        with conn.cursor().copy(sql.SQL('COPY "TAP_UPLOAD".mine FROM STDIN')) as copy:
            for row in upload.rows:
                copy.write_row(row)
    yield cluster, reference, upload
    drop_database_cluster(pg_server, cluster)
    pg_server.drop_database(reference)


CASES = {
    "contains_crossmatch": (
        "SELECT u.id, o.diaObjectId FROM TAP_UPLOAD.mine AS u JOIN apdb.DiaObject AS o "
        f"ON 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', u.ra, u.dec, {RADIUS_ARCSEC}/3600.0))"
    ),
    "distance_crossmatch_in_where": (
        "SELECT u.id, o.diaObjectId, DISTANCE(POINT(u.ra, u.dec), POINT(o.ra, o.dec)) * 3600 AS sep "
        "FROM apdb.DiaObject AS o, TAP_UPLOAD.mine AS u "
        f"WHERE DISTANCE(POINT(u.ra, u.dec), POINT(o.ra, o.dec)) < {RADIUS_ARCSEC}/3600.0"
    ),
    "crossmatch_child_table": (
        "SELECT u.id, COUNT(*) AS n FROM TAP_UPLOAD.mine AS u JOIN apdb.DiaSource AS s "
        "ON 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ra, u.dec, 0.001)) GROUP BY u.id"
    ),
    "upload_keys_joined_to_ids": (
        "SELECT o.diaObjectId, u.label FROM apdb.DiaObject AS o JOIN TAP_UPLOAD.mine AS u ON o.diaObjectId = u.objid"
    ),
    "catalog_left_join_upload": (
        "SELECT TOP 50 o.diaObjectId, u.id FROM apdb.DiaObject AS o LEFT JOIN TAP_UPLOAD.mine AS u "
        "ON 1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE(u.ra, u.dec, 0.001)) ORDER BY o.diaObjectId"
    ),
    "upload_alone": "SELECT COUNT(*) AS n, MIN(mine.id) AS first FROM TAP_UPLOAD.mine WHERE mine.ra IS NOT NULL",
    "upload_in_subquery": (
        "SELECT o.diaObjectId FROM apdb.DiaObject AS o WHERE o.diaObjectId IN (SELECT objid FROM TAP_UPLOAD.mine)"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_upload_queries_match_the_unsharded_reference(
    name: str, uploads_setup: tuple[DatabaseCluster, str, UploadedTable]
) -> None:
    cluster, reference, upload = uploads_setup
    adql_text = CASES[name]
    catalog = coordinator_catalog(cluster.topology.coordinator.dsn).with_tables([upload_table_info(upload)])
    translated = translate(adql_text, catalog)
    with psycopg.connect(reference) as conn:
        expected = run_reference(conn, translated.sql)
    with QueryEngine(cluster.topology) as engine, engine.query(adql_text, uploads=[upload]) as result:
        got_rows = list(result)
    assert [c.name for c in result.columns] == [c.name for c in translated.columns]
    problem = compare_rows(got_rows, expected.rows, tolerances(expected, None), ordered="ORDER BY" in adql_text)
    assert problem is None, problem
    if name == "contains_crossmatch":
        assert len(got_rows) >= 30  # the test data really crossmatches


def test_an_outer_join_keeping_every_upload_row_is_refused(
    uploads_setup: tuple[DatabaseCluster, str, UploadedTable],
) -> None:
    cluster, _, upload = uploads_setup
    text = (
        "SELECT u.id, o.diaObjectId FROM TAP_UPLOAD.mine AS u LEFT JOIN apdb.DiaObject AS o "
        "ON 1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE(u.ra, u.dec, 0.001))"
    )
    with (
        QueryEngine(cluster.topology) as engine,
        pytest.raises(UserError, match="unsupported because"),
        engine.query(text, uploads=[upload]) as result,
    ):
        list(result)


def test_crossmatch_chunks_cover_every_chunk_a_circle_touches() -> None:
    rng = np.random.default_rng(3)
    positions = np.column_stack([rng.uniform(0, 360, 300), rng.uniform(-90, 90, 300)])
    positions[:5, 1] = [90.0, -90.0, 89.999, -89.999, 0.0]
    for radius in (1 / 3600, 0.01, 0.2):
        found = _chunks_near(positions, radius, 6)
        assert found is not None
        for ra, dec in positions:
            touched = {int(c) for c in regions.Circle(float(ra), float(dec), radius).chunks(6)}
            assert touched <= found, (ra, dec, radius)
        assert len(found) < 12 * 4**6 / 4  # and it does bound the chunks
    assert _chunks_near(positions, 30.0, 6) is None  # too wide: every chunk
    assert _chunks_near(np.array([[np.nan, 1.0]]), 0.01, 6) == frozenset()
