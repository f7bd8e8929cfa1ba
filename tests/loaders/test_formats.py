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


def _anonymous_rss_bytes() -> int:
    """Resident anonymous memory (heap), which a memory-mapped file's pages do not count in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_a_fits_table_is_read_a_batch_at_a_time_not_whole(tmp_path: Path) -> None:
    import numpy as np

    from loaders.sources import open_source, read_batches

    rows, columns = 2_000_000, 8
    path = tmp_path / "wide.fits"
    rng = np.random.default_rng(5)
    table = Table({f"c{i}": rng.normal(size=rows) for i in range(columns)})
    table["id"] = np.arange(rows, dtype=np.int64)
    table.write(path, format="fits")
    data_bytes = rows * (columns + 1) * 8  # 144 MB of values
    del table
    before, peak, total, last_id = _anonymous_rss_bytes(), 0, 0, -1
    for batch in read_batches(open_source(path), batch_rows=50_000):
        peak = max(peak, _anonymous_rss_bytes() - before)
        ids = batch["id"].to_numpy()
        assert batch.num_rows <= 50_000 and ids[0] == last_id + 1
        total, last_id = total + batch.num_rows, int(ids[-1])
    assert total == rows
    # Read whole, the table and its DataFrame would take about twice the data's size.
    assert peak < data_bytes / 4, f"heap grew by {peak / 1e6:.0f} MB reading {data_bytes / 1e6:.0f} MB of FITS data"


@pytest.mark.parametrize("name", ["strings.fits", "strings.fits.gz"])
def test_an_empty_fits_string_is_null_whether_the_file_is_mapped_or_read_whole(tmp_path: Path, name: str) -> None:
    """astropy masks empty strings only in a table it reads whole (a .fits.gz); a mapped .fits must agree."""
    import gzip

    from loaders.sources import open_source, read_batches

    plain = tmp_path / "strings.fits"
    Table({"name": ["a", "", "c"], "n": [1, 2, 3]}).write(plain, format="fits")
    if name.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.compress(plain.read_bytes()))
    batches = list(read_batches(open_source(tmp_path / name)))
    assert [value for batch in batches for value in batch.column("name").to_pylist()] == ["a", None, "c"]


def test_a_mapped_fits_file_with_a_variable_length_array_column_loads_its_arrays(tmp_path: Path) -> None:
    """Empty strings become NULL, but array values pass through untouched."""
    import numpy as np
    from astropy.io import fits

    from loaders.sources import open_source, read_batches

    arrays = np.array(
        [np.array([1, 2], dtype=np.int32), np.array([3], dtype=np.int32), np.array([], dtype=np.int32)], dtype=object
    )
    columns = [
        fits.Column(name="counts", format="PJ()", array=arrays),
        fits.Column(name="name", format="4A", array=np.array(["a", "", "c"])),
    ]
    path = tmp_path / "arrays.fits"
    fits.BinTableHDU.from_columns(columns).writeto(path)
    batches = list(read_batches(open_source(path)))
    assert [v for batch in batches for v in batch.column("counts").to_pylist()] == [[1, 2], [3], []]
    assert [v for batch in batches for v in batch.column("name").to_pylist()] == ["a", None, "c"]
