"""The bad-input corpus: every broken input gets a specific error and leaves nothing behind.

One cluster (2 workers, ``apdb`` at chunk order 5) is shared by the module; it
holds a small committed base load of DiaObjects so that "already loaded" and
child rows have something to refer to.  After every rejected load the row
counts on every worker, the director index and the committed ledger rows are
exactly what they were before.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from dms_db.catalog_service import deploy_schema_file
from dms_db.errors import DmsError, NotFoundError, SchemaError
from loaders.bulk_load import load_inputs
from loaders.errors import LoadInputError, LoadValidationError
from tests.harness import DatabaseCluster, TestServer, build_database_cluster, drop_database_cluster
from tests.loaders.reference import count_everywhere

BASE_IDS = 50  # diaObjectId 1..50 are loaded by the fixture
NDATA = [f"{band}_psfFluxNdata" for band in "ugrizy"]


def dia_objects(n: int, first_id: int = 1000) -> pd.DataFrame:
    """Valid DiaObject rows (all NOT NULL columns) in a small patch of sky."""
    rng = np.random.default_rng(first_id)
    frame = pd.DataFrame(
        {
            "diaObjectId": np.arange(first_id, first_id + n, dtype=np.int64),
            "ra": rng.uniform(10.0, 11.0, n),
            "dec": rng.uniform(-31.0, -30.0, n),
            "nDiaSources": np.zeros(n, dtype=np.int32),
        }
    )
    for column in NDATA:
        frame[column] = np.zeros(n, dtype=np.int32)
    return frame


def dia_sources(object_ids: list[int], first_id: int = 5000) -> pd.DataFrame:
    """Valid DiaSource rows (all NOT NULL columns) of the given DiaObjects."""
    n = len(object_ids)
    return pd.DataFrame(
        {
            "diaSourceId": np.arange(first_id, first_id + n, dtype=np.int64),
            "visit": np.full(n, 1, dtype=np.int64),
            "detector": np.full(n, 3, dtype=np.int16),
            "diaObjectId": np.array(object_ids, dtype=np.int64),
            "midpointMjdTai": np.full(n, 60000.5),
            "band": ["r"] * n,
            "ra": np.full(n, 10.5),
            "dec": np.full(n, -30.5),
        }
    )


@dataclass(frozen=True)
class Snapshot:
    """What is visible in the cluster: per-worker row counts, director index, committed loads."""

    objects: tuple[int, ...]
    sources: tuple[int, ...]
    director_index: int
    committed: int
    ledger_rows: int


def snapshot(cluster: DatabaseCluster) -> Snapshot:
    with psycopg.connect(cluster.coordinator_dsn) as conn:
        indexed = conn.execute("SELECT count(*) FROM dms.director_index").fetchone()[0]
        committed = conn.execute("SELECT count(*) FROM dms.load_ledger WHERE state = 'committed'").fetchone()[0]
        ledger_rows = conn.execute("SELECT count(*) FROM dms.load_ledger").fetchone()[0]
    return Snapshot(
        tuple(count_everywhere(cluster, "apdb", "DiaObject")),
        tuple(count_everywhere(cluster, "apdb", "DiaSource")),
        indexed,
        committed,
        ledger_rows,
    )


@pytest.fixture(scope="module")
def loaded(pg_server: TestServer) -> Iterator[DatabaseCluster]:
    """A 2-worker cluster with apdb deployed and DiaObjects 1..50 committed."""
    cluster = build_database_cluster(pg_server, 2, 1)
    try:
        deploy_schema_file(cluster.config, "apdb", chunk_order=5)
        load_inputs(cluster.topology, "apdb.DiaObject", [dia_objects(BASE_IDS, first_id=1)])
        yield cluster
    finally:
        drop_database_cluster(pg_server, cluster)


# --- the corpus -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A bad load: how to build its inputs, and the error it must get."""

    build: Callable[[Path], list[object]]
    error: type[DmsError] | tuple[type[DmsError], ...]
    fragment: str
    target: str = "apdb.DiaObject"
    row: int | None = None
    column: str | None = None
    batch_rows: int = 200_000


def _parquet(frame: pd.DataFrame | pa.Table, path: Path) -> Path:
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path)
    return path


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def extra_column(tmp: Path) -> list[object]:
    return [dia_objects(5).rename(columns={"nDiaSources": "nDiaSource"})]


def missing_column(tmp: Path) -> list[object]:
    return [dia_objects(5).drop(columns=["g_psfFluxNdata"])]


def text_in_bigint(tmp: Path) -> list[object]:
    frame = dia_objects(10).astype({"diaObjectId": object})
    frame.loc[6, "diaObjectId"] = "abc"
    return [_csv(frame, tmp / "text.csv")]


def nan_ra(tmp: Path) -> list[object]:
    table = pa.Table.from_pandas(dia_objects(5), preserve_index=False)
    ra = table["ra"].to_numpy().copy()
    ra[3] = np.nan  # a real NaN (Arrow keeps it; pandas would turn it into null)
    table = table.set_column(table.column_names.index("ra"), "ra", pa.array(ra, from_pandas=False))
    return [_parquet(table, tmp / "nan.parquet")]


def null_ra_from_pandas(tmp: Path) -> list[object]:
    frame = dia_objects(5)
    frame.loc[2, "ra"] = np.nan
    return [frame]


def inf_dec(tmp: Path) -> list[object]:
    frame = dia_objects(5)
    frame.loc[1, "dec"] = np.inf
    return [frame]


def ra_360(tmp: Path) -> list[object]:
    frame = dia_objects(5)
    frame.loc[4, "ra"] = 360.0
    return [frame]


def dec_95(tmp: Path) -> list[object]:
    frame = dia_objects(5)
    frame.loc[0, "dec"] = 95.0
    return [frame]


def duplicate_ids(tmp: Path) -> list[object]:
    frame = dia_objects(8)
    frame.loc[5, "diaObjectId"] = frame.loc[2, "diaObjectId"]
    return [_parquet(frame, tmp / "dups.parquet")]


def duplicate_across_files(tmp: Path) -> list[object]:
    first = _parquet(dia_objects(4, first_id=6000), tmp / "a.parquet")
    return [first, _parquet(dia_objects(4, first_id=6002), tmp / "b.parquet")]


def already_loaded(tmp: Path) -> list[object]:
    return [dia_objects(6, first_id=BASE_IDS - 2)]  # 48, 49, 50 exist


def orphan_children(tmp: Path) -> list[object]:
    return [dia_sources([1, 2, 999_999, 3])]


def truncated_parquet(tmp: Path) -> list[object]:
    path = _parquet(dia_objects(500), tmp / "full.parquet")
    data = path.read_bytes()
    cut = tmp / "truncated.parquet"
    cut.write_bytes(data[: len(data) // 2])
    return [cut]


def truncated_csv_gz(tmp: Path) -> list[object]:
    text = dia_objects(20_000).to_csv(index=False).encode()
    data = gzip.compress(text)
    path = tmp / "truncated.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    return [path]


def corrupt_fits(tmp: Path) -> list[object]:
    path = tmp / "corrupt.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b"\x00\xff garbage " * 300)
    return [path]


def truncated_fits(tmp: Path) -> list[object]:
    path = tmp / "truncated.fits"
    Table.from_pandas(dia_objects(20_000)).write(path, format="fits")
    os.truncate(path, path.stat().st_size // 2)
    return [path]


def empty_file(tmp: Path) -> list[object]:
    path = tmp / "empty.parquet"
    path.write_bytes(b"")
    return [path]


def header_only_csv(tmp: Path) -> list[object]:
    path = tmp / "header.csv"
    path.write_text(",".join(dia_objects(1).columns) + "\n")
    return [path]


def csv_gz_not_gzip(tmp: Path) -> list[object]:
    path = tmp / "plain.csv.gz"
    path.write_text(dia_objects(5).to_csv(index=False))  # not frame.to_csv(path): pandas would gzip it
    return [path]


def gzip_named_csv(tmp: Path) -> list[object]:
    path = tmp / "packed.csv"
    path.write_bytes(gzip.compress(dia_objects(5).to_csv(index=False).encode()))
    return [path]


def unknown_suffix(tmp: Path) -> list[object]:
    return [_csv(dia_objects(5), tmp / "objects.txt")]


def missing_file(tmp: Path) -> list[object]:
    return [tmp / "no-such-file.parquet"]


def last_batch_bad(tmp: Path) -> list[object]:
    frame = dia_objects(1000, first_id=2000)
    frame.loc[999, "ra"] = 360.0
    return [_parquet(frame, tmp / "many-batches.parquet")]


def last_batch_bad_frame(tmp: Path) -> list[object]:
    frame = dia_objects(1000, first_id=4000)
    frame.loc[999, "dec"] = 95.0
    return [frame]


def last_row_bad_csv(tmp: Path) -> list[object]:
    """The CSV reader batches by 16 MB blocks, so this small file is one batch whatever batch_rows says."""
    frame = dia_objects(1000, first_id=3000)
    frame.loc[999, "dec"] = -90.5
    return [_csv(frame, tmp / "many-rows.csv")]


def last_batch_orphan_children(tmp: Path) -> list[object]:
    ids = [1 + i % BASE_IDS for i in range(1000)]
    ids[-1] = 888_888
    return [_parquet(dia_sources(ids, first_id=10_000), tmp / "sources.parquet")]


def good_rows(tmp: Path) -> list[object]:
    return [dia_objects(5)]


CASES = {
    "extra-column": Case(extra_column, LoadValidationError, "did you mean nDiaSources", column="nDiaSource"),
    "missing-column": Case(missing_column, LoadValidationError, "required column is missing", column="g_psfFluxNdata"),
    "text-in-bigint-csv": Case(
        text_in_bigint, LoadValidationError, "is not a number of type int64", row=7, column="diaObjectId"
    ),
    "nan-ra": Case(nan_ra, LoadValidationError, "must be finite and in [0, 360)", row=4, column="ra"),
    "nan-ra-pandas": Case(null_ra_from_pandas, LoadValidationError, "must not be null", row=3, column="ra"),
    "inf-dec": Case(inf_dec, LoadValidationError, "must be finite and in [-90, 90]", row=2, column="dec"),
    "ra-360": Case(ra_360, LoadValidationError, "must be finite and in [0, 360)", row=5, column="ra"),
    "dec-95": Case(dec_95, LoadValidationError, "must be finite and in [-90, 90]", row=1, column="dec"),
    "duplicate-ids": Case(
        duplicate_ids, LoadValidationError, "duplicate key within this load", row=6, column="diaObjectId"
    ),
    "duplicate-across-files": Case(
        duplicate_across_files, LoadValidationError, "duplicate key within this load", row=1, column="diaObjectId"
    ),
    "already-loaded": Case(already_loaded, LoadValidationError, "already in the catalog", row=1, column="diaObjectId"),
    "orphan-children": Case(
        orphan_children,
        LoadValidationError,
        "refers to a DiaObject that is not loaded",
        target="apdb.DiaSource",
        row=3,
        column="diaObjectId",
    ),
    "truncated-parquet": Case(truncated_parquet, LoadInputError, "cannot be read as parquet"),
    "truncated-csv-gz": Case(truncated_csv_gz, LoadInputError, "cannot be read as csv"),
    "corrupt-fits": Case(corrupt_fits, LoadInputError, "cannot be read as fits"),
    "truncated-fits": Case(truncated_fits, LoadInputError, "shorter than its FITS header says"),
    "empty-file": Case(empty_file, LoadInputError, "is empty"),
    "header-only-csv": Case(header_only_csv, LoadInputError, "has a header but no data rows"),
    "csv-gz-not-gzip": Case(csv_gz_not_gzip, LoadInputError, "is named .gz but is not gzip-compressed"),
    "gzip-named-csv": Case(gzip_named_csv, LoadInputError, "is gzip-compressed but its name does not end in .gz"),
    "unknown-suffix": Case(unknown_suffix, LoadInputError, "cannot tell the format of objects.txt"),
    "missing-file": Case(missing_file, LoadInputError, "does not exist"),
    # SchemaError today, although the loader documents NotFoundError for unknown targets (see the report)
    "unknown-table": Case(good_rows, (NotFoundError, SchemaError), "has no table 'Nope'", target="apdb.Nope"),
    "unknown-schema": Case(good_rows, NotFoundError, "no catalog named 'nope' is deployed", target="nope.DiaObject"),
    "no-schema-prefix": Case(good_rows, NotFoundError, "must be SCHEMA.TABLE", target="DiaObject"),
    "last-batch-bad-parquet": Case(
        last_batch_bad, LoadValidationError, "must be finite and in [0, 360)", row=1000, column="ra", batch_rows=100
    ),
    "last-batch-bad-frame": Case(
        last_batch_bad_frame,
        LoadValidationError,
        "must be finite and in [-90, 90]",
        row=1000,
        column="dec",
        batch_rows=100,
    ),
    "last-row-bad-csv": Case(
        last_row_bad_csv, LoadValidationError, "must be finite and in [-90, 90]", row=1000, column="dec", batch_rows=100
    ),
    "last-batch-orphan-children": Case(
        last_batch_orphan_children,
        LoadValidationError,
        "refers to a DiaObject that is not loaded",
        target="apdb.DiaSource",
        row=1000,
        column="diaObjectId",
        batch_rows=100,
    ),
}

PARAMS = [pytest.param(name, id=name) for name in CASES]


@pytest.mark.parametrize("name", PARAMS)
def test_bad_input_is_rejected_and_leaves_nothing(loaded: DatabaseCluster, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    inputs = case.build(tmp_path)
    before = snapshot(loaded)
    with pytest.raises(case.error) as caught:
        load_inputs(loaded.topology, case.target, inputs, batch_rows=case.batch_rows)
    error = caught.value
    assert case.fragment in str(error), str(error)
    if isinstance(error, LoadValidationError):
        matching = [p for p in error.problems if case.fragment in p.message]
        assert matching, error.problems
        assert error.total >= len(error.problems) >= 1
        if case.row is not None:
            assert matching[0].row == case.row, matching
        if case.column is not None:
            assert matching[0].column == case.column, matching
    after = snapshot(loaded)
    assert after.objects == before.objects and after.sources == before.sources
    assert after.director_index == before.director_index == BASE_IDS
    assert after.committed == before.committed
    with psycopg.connect(loaded.coordinator_dsn) as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM dms.load_ledger ORDER BY load_id")]
    # a load that got as far as the ledger is recorded as aborted, never committed
    assert states[: before.ledger_rows].count("committed") == before.committed
    assert all(state == "aborted" for state in states[before.ledger_rows :]), states


def test_unknown_table_suggests_names(loaded: DatabaseCluster) -> None:
    with pytest.raises((NotFoundError, SchemaError)) as caught:
        load_inputs(loaded.topology, "apdb.DiaObjct", [dia_objects(2)])
    assert "did you mean 'DiaObject'" in str(caught.value)
    with pytest.raises((NotFoundError, SchemaError)) as caught:
        load_inputs(loaded.topology, "apdb.Nope", [dia_objects(2)])
    assert "DiaSource" in str(caught.value)  # lists the known tables


def test_unknown_schema_lists_deployed_ones(loaded: DatabaseCluster) -> None:
    with pytest.raises(NotFoundError) as caught:
        load_inputs(loaded.topology, "nope.DiaObject", [dia_objects(2)])
    assert "deployed: apdb" in str(caught.value)


def test_many_problems_are_reported_together(loaded: DatabaseCluster) -> None:
    frame = dia_objects(40)
    frame.loc[:29, "ra"] = 400.0
    before = snapshot(loaded)
    with pytest.raises(LoadValidationError) as caught:
        load_inputs(loaded.topology, "apdb.DiaObject", [frame])
    assert caught.value.total == 30
    assert len(caught.value.problems) == 20  # the first ones, with the rest counted
    assert [p.row for p in caught.value.problems] == list(range(1, 21))
    assert "and 10 more" in str(caught.value)
    assert snapshot(loaded).objects == before.objects


def test_a_good_load_after_the_rejections_still_works(loaded: DatabaseCluster) -> None:
    """The rejected loads above used ids 1000+; none of them blocks loading those ids now."""
    before = snapshot(loaded)
    report = load_inputs(loaded.topology, "apdb.DiaObject", [dia_objects(10, first_id=1000)])
    assert report.rows == 10 and not report.already_loaded
    after = snapshot(loaded)
    assert sum(after.objects) == sum(before.objects) + 10
    assert after.director_index == before.director_index + 10
    assert after.committed == before.committed + 1


def _cluster_with_objects(make_cluster: Callable[..., DatabaseCluster]) -> DatabaseCluster:
    """Two workers holding DiaObjects 1..BASE_IDS, ready for DiaSources."""
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=5)
    load_inputs(cluster.topology, "apdb.DiaObject", [dia_objects(BASE_IDS, first_id=1)])
    return cluster


def _sources_with_ids(ids: list[int]) -> pd.DataFrame:
    """DiaSources with the given ``diaSourceId`` values, of DiaObjects 1..BASE_IDS in turn."""
    frame = dia_sources([1 + i % BASE_IDS for i in range(len(ids))])
    frame["diaSourceId"] = np.array(ids, dtype=np.int64)
    return frame


def test_a_child_key_already_loaded_is_refused_among_new_keys_inside_and_outside_the_loaded_range(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """Child keys have no global index: the workers are asked about keys inside a partition's key range."""
    cluster = _cluster_with_objects(make_cluster)
    load_inputs(cluster.topology, "apdb.DiaSource", [_sources_with_ids(list(range(5000, 5200, 2)))])  # even ids
    loaded = sum(count_everywhere(cluster, "apdb", "DiaSource"))
    clash = [5001, 5003, 5100, 5005, 9000]  # new odd ids inside the range, one loaded id, one beyond
    with pytest.raises(LoadValidationError) as caught:
        load_inputs(cluster.topology, "apdb.DiaSource", [_sources_with_ids(clash)])
    problems = [(p.row, p.column) for p in caught.value.problems if "already in the catalog" in p.message]
    assert problems == [(3, "diaSourceId")], caught.value.problems
    assert sum(count_everywhere(cluster, "apdb", "DiaSource")) == loaded
    report = load_inputs(cluster.topology, "apdb.DiaSource", [_sources_with_ids([5001, 5003, 5005, 9000])])
    assert report.rows == 4
    assert sum(count_everywhere(cluster, "apdb", "DiaSource")) == loaded + 4


def test_an_append_of_keys_beyond_every_loaded_range_asks_the_workers_nothing(
    make_cluster: Callable[..., DatabaseCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly case: new ids above every loaded one need no look-up of existing keys on the workers."""
    import loaders.bulk_load

    cluster = _cluster_with_objects(make_cluster)
    load_inputs(cluster.topology, "apdb.DiaSource", [_sources_with_ids(list(range(5000, 5200)))])

    def not_asked(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the workers were asked about keys beyond every partition's range")

    monkeypatch.setattr(loaders.bulk_load, "_existing_keys", not_asked)
    assert load_inputs(cluster.topology, "apdb.DiaSource", [_sources_with_ids(list(range(6000, 6100)))]).rows == 100


def test_a_replicated_key_already_loaded_is_refused_and_new_keys_in_its_range_load(
    make_cluster: Callable[..., DatabaseCluster],
) -> None:
    """Replicated tables are plain tables: their own key range decides which keys the worker is asked about."""
    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=5)

    def solar_system(ids: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"ssObjectId": np.array(ids, dtype=np.int64)})

    load_inputs(cluster.topology, "apdb.SSObject", [solar_system(list(range(10, 21, 2)))])
    with pytest.raises(LoadValidationError) as caught:
        load_inputs(cluster.topology, "apdb.SSObject", [solar_system([11, 14, 30])])
    problems = [(p.row, p.column) for p in caught.value.problems if "already in the catalog" in p.message]
    assert problems == [(2, "ssObjectId")], caught.value.problems
    assert load_inputs(cluster.topology, "apdb.SSObject", [solar_system([11, 30])]).rows == 2
    assert count_everywhere(cluster, "apdb", "SSObject") == [8, 8]
