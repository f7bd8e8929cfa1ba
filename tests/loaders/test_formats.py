"""Every input format users have: Parquet, CSV, gzipped CSV, FITS, VOTable, DataFrame, Arrow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from astropy.table import Table

from dms_db.catalog_service import deploy_schema_file
from loaders.bulk_load import load_inputs
from loaders.simulate import SimulationConfig, simulate_survey
from tests.harness import DatabaseCluster

WRITERS: dict[str, Callable[[pd.DataFrame, Path], object]] = {
    "parquet": lambda frame, path: frame.to_parquet(path),
    "csv": lambda frame, path: frame.to_csv(path, index=False),
    "csv.gz": lambda frame, path: frame.to_csv(path, index=False, compression="gzip"),
    "fits": lambda frame, path: Table.from_pandas(frame).write(path, format="fits"),
    "vot": lambda frame, path: Table.from_pandas(frame).write(path, format="votable"),
}


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    """Visit rows with every kind of column: ids, doubles, text, a char, a timestamp."""
    return simulate_survey(SimulationConfig(seed=3, n_objects=300, n_visits=12)).tables["dr.Visit"]


def _stored(cluster: DatabaseCluster, low: int, high: int) -> pd.DataFrame:
    with psycopg.connect(cluster.topology.workers[0].dsn) as conn:
        cur = conn.execute(
            'SELECT visit, band, "expMidptMJD", airmass FROM dr."Visit" WHERE visit BETWEEN %s AND %s ORDER BY visit',
            (low, high),
        )
        return pd.DataFrame(cur.fetchall(), columns=["visit", "band", "expMidptMJD", "airmass"])


def test_each_format_loads_the_same_values(
    make_cluster: Callable[..., DatabaseCluster], visits: pd.DataFrame, tmp_path: Path
) -> None:
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "dr", chunk_order=5)
    shift = 10**14  # visit ids are about 2e12
    inputs: list[tuple[str, object]] = [(fmt, None) for fmt in WRITERS] + [("dataframe", None), ("arrow", None)]
    for number, (fmt, _) in enumerate(inputs, start=1):
        frame = visits.copy()
        frame["visit"] = frame["visit"] + number * shift
        if fmt == "dataframe":
            source: object = frame
        elif fmt == "arrow":
            source = pa.Table.from_pandas(frame, preserve_index=False)
        else:
            if fmt in ("fits", "vot"):
                frame = frame.drop(columns=["expMidpt"])  # astropy writes no datetime64 columns
            source = tmp_path / f"visits.{fmt}"
            WRITERS[fmt](frame, source)
        report = load_inputs(cluster.topology, "dr.Visit", [source])
        assert report.rows == len(visits), fmt
        stored = _stored(cluster, number * shift, (number + 1) * shift - 1)
        expected = frame[["visit", "band", "expMidptMJD", "airmass"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(stored, expected, check_dtype=False, obj=fmt)
