"""Real catalogs through the loader: Hipparcos (all sky, both poles) and OGLE-III (crowded fields).

The data live in ``../shared/data/`` next to the project (see its README for
provenance); they are not part of the project, so these tests skip where the
folder is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from dms_db.catalog_service import deploy_schema_file
from loaders.bulk_load import load_inputs
from tests.harness import DatabaseCluster
from tests.loaders.reference import count_everywhere, primary_chunks

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HIPPARCOS = DATA / "hipparcos2_hip2.csv.gz"
OGLE = DATA / "ogle3_variables.csv.gz"
NDATA = [f"{band}_psfFluxNdata" for band in "ugrizy"]


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real catalog {path.name} not found in {DATA} (shared data folder absent)")
    return path


@pytest.fixture(scope="module")
def hipparcos() -> pd.DataFrame:
    """All of Hipparcos as dr.Object rows: objectId=HIP, ra, dec, g_psfFlux (nJy) from Hpmag."""
    raw = pd.read_csv(_require(HIPPARCOS), usecols=["HIP", "ra_deg", "dec_deg", "Hpmag"])
    return pd.DataFrame(
        {
            "objectId": raw["HIP"].astype(np.int64),
            "ra": raw["ra_deg"].astype(np.float64),
            "dec": raw["dec_deg"].astype(np.float64),
            "g_psfFlux": (10.0 ** ((31.4 - raw["Hpmag"]) / 2.5)).astype(np.float32),
        }
    )


def primary_rows(cluster: DatabaseCluster, schema_name: str, table_name: str, columns: list[str]) -> pd.DataFrame:
    """Rows of a sharded table, each chunk read once (from its replica 0), with the worker it came from."""
    primaries = primary_chunks(cluster, schema_name)
    query = sql.SQL("SELECT {} FROM {} WHERE chunk_id = ANY(%s)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(schema_name, table_name)
    )
    frames = []
    for worker in cluster.topology.workers:
        with psycopg.connect(worker.dsn) as conn:
            rows = conn.execute(query, (primaries.get(worker.name, []),)).fetchall()
        frame = pd.DataFrame(rows, columns=columns)
        frame["worker"] = worker.name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def coordinator_counts(cluster: DatabaseCluster, schema_name: str, table_name: str) -> tuple[int, int]:
    """(director index entries, sum of chunk row counts) of one table."""
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        indexed = conn.execute(
            "SELECT count(*) FROM dms.director_index WHERE schema_name = %s AND table_name = %s",
            (schema_name, table_name),
        ).fetchone()[0]
        counted = conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM dms.chunk_row_count WHERE schema_name = %s AND table_name = %s",
            (schema_name, table_name),
        ).fetchone()[0]
    return int(indexed), int(counted)


def assert_same_objects(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same ids once each, and the same values (ra/dec exactly, flux as float32)."""
    actual = actual.sort_values("objectId").reset_index(drop=True)
    expected = expected.sort_values("objectId").reset_index(drop=True)
    assert actual["objectId"].is_unique
    assert len(actual) == len(expected)
    np.testing.assert_array_equal(actual["objectId"].to_numpy(np.int64), expected["objectId"].to_numpy(np.int64))
    np.testing.assert_array_equal(actual["ra"].to_numpy(float), expected["ra"].to_numpy(float))
    np.testing.assert_array_equal(actual["dec"].to_numpy(float), expected["dec"].to_numpy(float))
    np.testing.assert_allclose(
        actual["g_psfFlux"].to_numpy(np.float32), expected["g_psfFlux"].to_numpy(np.float32), rtol=1e-6
    )


def test_hipparcos_all_sky_every_star_once(
    make_cluster: Callable[..., DatabaseCluster], hipparcos: pd.DataFrame
) -> None:
    """All 117,955 stars, as a DataFrame, on 4 workers with chunk order 2 (192 chunks over the sky)."""
    cluster = make_cluster(4)
    deploy_schema_file(cluster.config, "dr", chunk_order=2)
    report = load_inputs(cluster.topology, "dr.Object", [hipparcos], batch_rows=50_000)
    assert report.rows == len(hipparcos) and not report.already_loaded

    columns = ["objectId", "ra", "dec", "g_psfFlux"]
    actual = primary_rows(cluster, "dr", "Object", columns)
    assert sum(count_everywhere(cluster, "dr", "Object")) == len(hipparcos)  # replication 1: no copies
    assert actual.groupby("worker").size().min() > 0  # every worker got some of the sky
    assert coordinator_counts(cluster, "dr", "Object") == (len(hipparcos), len(hipparcos))
    assert_same_objects(actual[columns], hipparcos)

    # the stars nearest each pole (|dec| up to 89.78) are present with their own positions
    by_id = actual.set_index("objectId")
    for pole in (hipparcos.nlargest(5, "dec"), hipparcos.nsmallest(5, "dec")):
        for star in pole.itertuples():
            assert by_id.loc[star.objectId, "dec"] == star.dec
            assert by_id.loc[star.objectId, "ra"] == star.ra
    # and across RA 0/360
    edge = hipparcos[(hipparcos["ra"] < 0.01) | (hipparcos["ra"] > 359.99)]
    assert len(edge) > 0 and edge["objectId"].isin(by_id.index).all()


def test_hipparcos_csv_with_column_map(
    make_cluster: Callable[..., DatabaseCluster], hipparcos: pd.DataFrame, tmp_path: Path
) -> None:
    """Every 10th star through a CSV file with the input's own column names and a --map.

    Fluxes are written in exponent notation: written as whole numbers (``%.17g`` gives e.g.
    1559696128) the column is read as int64 and the loader rejects every row of the float32
    column (see the report on conform._convert).
    """
    subset = hipparcos.iloc[::10]
    path = tmp_path / "hip-subset.csv"
    renamed = subset.rename(columns={"objectId": "HIP", "ra": "ra_deg", "dec": "dec_deg", "g_psfFlux": "flux_g"})
    renamed = renamed.astype({"flux_g": np.float64})
    renamed["flux_g"] = renamed["flux_g"].map(lambda v: f"{v:.9e}")
    renamed.to_csv(path, index=False, float_format="%.17g")
    column_map = {"HIP": "objectId", "ra_deg": "ra", "dec_deg": "dec", "flux_g": "g_psfFlux"}
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "dr", chunk_order=2)
    report = load_inputs(cluster.topology, "dr.Object", [path], column_map=column_map, batch_rows=5_000)
    assert report.rows == len(subset)
    columns = ["objectId", "ra", "dec", "g_psfFlux"]
    assert_same_objects(primary_rows(cluster, "dr", "Object", columns)[columns], subset)
    assert coordinator_counts(cluster, "dr", "Object") == (len(subset), len(subset))
    again = load_inputs(cluster.topology, "dr.Object", [path], column_map=column_map)
    assert again.already_loaded and again.load_id == report.load_id


OGLE_STEP = 1  # every row; see the docstring of the test


def test_ogle3_crowded_fields(make_cluster: Callable[..., DatabaseCluster]) -> None:
    """OGLE-III variables (399,679 rows in the bulge and the Magellanic Clouds) as apdb.DiaObject.

    Chunk order 6 (about 0.84 deg2 per chunk) on 4 workers: a few hundred very crowded chunks.
    The full set loads in about 15 s on 2 busy cores, so no subset is taken (``OGLE_STEP`` = 1;
    raise it to load every n-th row, ids keeping their row numbers).
    """
    raw = pd.read_csv(_require(OGLE), usecols=["ID", "ra_deg", "dec_deg"])
    assert len(raw) == 399_679
    raw = raw.iloc[::OGLE_STEP]
    n = len(raw)
    frame = pd.DataFrame(
        {
            "diaObjectId": np.arange(1, len(raw) * OGLE_STEP + 1, OGLE_STEP, dtype=np.int64),
            "ra": raw["ra_deg"].to_numpy(np.float64),
            "dec": raw["dec_deg"].to_numpy(np.float64),
            "nDiaSources": np.zeros(n, dtype=np.int32),
        }
    )
    for column in NDATA:
        frame[column] = np.zeros(n, dtype=np.int32)
    cluster = make_cluster(4)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)
    report = load_inputs(cluster.topology, "apdb.DiaObject", [frame])
    assert report.rows == n
    assert sum(count_everywhere(cluster, "apdb", "DiaObject")) == n
    assert coordinator_counts(cluster, "apdb", "DiaObject") == (n, n)
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        per_chunk = [
            r[0]
            for r in conn.execute(
                "SELECT row_count FROM dms.chunk_row_count WHERE schema_name = 'apdb' AND table_name = 'DiaObject'"
            )
        ]
    assert report.chunks == len(per_chunk)
    assert max(per_chunk) > 5_000  # the fields are crowded
    assert report.overlap_rows > 0
    actual = primary_rows(cluster, "apdb", "DiaObject", ["diaObjectId", "ra", "dec", *NDATA])
    actual = actual.sort_values("diaObjectId").reset_index(drop=True)
    np.testing.assert_array_equal(actual["diaObjectId"].to_numpy(np.int64), frame["diaObjectId"].to_numpy())
    np.testing.assert_array_equal(actual["ra"].to_numpy(float), frame["ra"].to_numpy())
    np.testing.assert_array_equal(actual["dec"].to_numpy(float), frame["dec"].to_numpy())
    assert (actual[NDATA].to_numpy() == 0).all()
