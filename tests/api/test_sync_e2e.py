"""/tap/sync end to end: pyvo and httpx against the service under a real uvicorn, on a loaded 2-worker cluster.

Answers are checked against the simulated survey's own pandas frames
(``tap_cluster.tables``), every output format is read back with the library
its users read it with, and every error must be a VOTable error document with
the right HTTP status that shows neither a traceback nor a DSN.  The query
log is checked in the coordinator database.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest
import pyvo
import requests
from astropy.io import fits, votable
from astropy.table import Table
from pyvo.dal.exceptions import DALOverflowWarning

from dms_db.tokens import create_token
from tests.api.conftest import TapCluster
from tests.api.tap_checks import assert_no_leak, error_of, log_row, query_params

pytestmark = pytest.mark.timeout(300)

StartService = Callable[..., AbstractContextManager[str]]

DIA_SOURCES = "SELECT * FROM apdb.DiaSource ORDER BY diaSourceId"
CONE_CENTRE = (60.2, -29.8)
CONE_RADIUS_DEG = 0.5


# ---------------------------------------------------------------- helpers


def sync(url: str, params: dict[str, str], *, method: str = "POST", headers: dict[str, str] | None = None):
    """One sync request (urlencoded POST or GET); the body is checked for leaks."""
    if method == "GET":
        response = httpx.get(f"{url}/sync", params=params, headers=headers, timeout=60)
    else:
        response = httpx.post(f"{url}/sync", data=params, headers=headers, timeout=60)
    assert_no_leak(response)
    return response


def separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle distance (haversine) from (ra0, dec0), all in degrees."""
    ra, dec, ra0, dec0 = map(np.radians, (ra, dec, ra0, dec0))
    a = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(a)))


def votable_table(content: bytes) -> Table:
    return votable.parse_single_table(io.BytesIO(content)).to_table(use_names_over_ids=True)


def votable_status(content: bytes) -> list[str]:
    """The values of every QUERY_STATUS INFO of a VOTable document, in order."""
    document = votable.parse(io.BytesIO(content))
    return [
        str(info.value) for resource in document.resources for info in resource.infos if info.name == "QUERY_STATUS"
    ]


def read_json(content: bytes) -> pd.DataFrame:
    document = json.loads(content)
    assert document["query_status"] == "OK"
    return pd.DataFrame(document["data"], columns=[column["name"] for column in document["metadata"]], dtype=object)


def read_fits(content: bytes) -> pd.DataFrame:
    with fits.open(io.BytesIO(content)) as hdus:
        assert hdus[1].header["QUERY_STATUS"] == "OK"
    return Table.read(io.BytesIO(content), format="fits").to_pandas()


def read_votable(serialization: str) -> Callable[[bytes], pd.DataFrame]:
    def read(content: bytes) -> pd.DataFrame:
        assert f"<{serialization}>".encode() in content, f"not a {serialization} VOTable"
        assert votable_status(content) == ["OK"]
        return votable_table(content).to_pandas()

    return read


READERS: dict[str, Callable[[bytes], pd.DataFrame]] = {
    "votable-td": read_votable("TABLEDATA"),
    "votable-b2": read_votable("BINARY2"),
    "csv-pandas": lambda content: pd.read_csv(io.BytesIO(content), dtype_backend="numpy_nullable"),
    "csv-astropy": lambda content: Table.read(content.decode(), format="ascii.csv").to_pandas(),
    "tsv-pandas": lambda content: pd.read_csv(io.BytesIO(content), sep="\t", dtype_backend="numpy_nullable"),
    "fits": read_fits,
    # pandas' default turns int64 with NULLs into float64; Arrow dtypes keep every digit
    "parquet": lambda content: pq.read_table(io.BytesIO(content)).to_pandas(types_mapper=pd.ArrowDtype),
    "json": read_json,
}

# (parameter, value, Content-Type the response must start with, reader)
FORMATS = [
    ("RESPONSEFORMAT", "votable", "application/x-votable+xml", "votable-td"),
    ("RESPONSEFORMAT", "votable/b2", "application/x-votable+xml", "votable-b2"),
    ("RESPONSEFORMAT", "application/x-votable+xml", "application/x-votable+xml", "votable-td"),
    ("FORMAT", 'application/x-votable+xml; serialization="BINARY2"', "application/x-votable+xml", "votable-b2"),
    (None, None, "application/x-votable+xml", "votable-b2"),
    ("RESPONSEFORMAT", "csv", "text/csv", "csv-pandas"),
    ("FORMAT", "text/csv", "text/csv", "csv-astropy"),
    ("RESPONSEFORMAT", "tsv", "text/tab-separated-values", "tsv-pandas"),
    ("format", "text/tab-separated-values", "text/tab-separated-values", "tsv-pandas"),
    ("RESPONSEFORMAT", "fits", "application/fits", "fits"),
    ("FORMAT", "application/fits", "application/fits", "fits"),
    ("RESPONSEFORMAT", "parquet", "application/vnd.apache.parquet", "parquet"),
    ("FORMAT", "application/vnd.apache.parquet", "application/vnd.apache.parquet", "parquet"),
    ("RESPONSEFORMAT", "json", "application/json", "json"),
    ("responseformat", "application/json", "application/json", "json"),
]


def _is_null(value: Any) -> bool:
    if value is None or value is np.ma.masked:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_bool(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        assert value.lower() in ("true", "false", "t", "f"), value
        return value.lower() in ("true", "t")
    return bool(value)


def assert_same_column(got: pd.Series, expected: pd.Series, label: str, *, null_bool: bool | None = None) -> None:
    """One column read back from a format equals the reference column, by the reference's type."""
    name = f"{label}: column {expected.name}"
    dtype = expected.dtype
    if pd.api.types.is_bool_dtype(dtype):
        want = [null_bool if _is_null(v) else bool(v) for v in expected]
        assert [None if _is_null(v) else _as_bool(v) for v in got] == want, name
    elif pd.api.types.is_integer_dtype(dtype):
        assert [None if _is_null(v) else int(v) for v in got] == [None if _is_null(v) else int(v) for v in expected], (
            name
        )
    elif pd.api.types.is_float_dtype(dtype):
        values = np.array([np.nan if _is_null(v) else float(v) for v in got])
        want = expected.astype("float64").to_numpy(na_value=np.nan)
        rtol = 1e-6 if dtype in (np.float32, "Float32") else 1e-14
        np.testing.assert_allclose(values, want, rtol=rtol, atol=0, equal_nan=True, err_msg=name)
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        texts = pd.Series(
            [None if _is_null(v) else (v.decode() if isinstance(v, bytes) else v) for v in got], dtype=object
        )
        times = pd.to_datetime(texts, utc=True, format="ISO8601").dt.tz_localize(None).astype("datetime64[ns]")
        difference = (times - expected.astype("datetime64[ns]")).abs()
        assert (difference <= pd.Timedelta(microseconds=1)).all(), f"{name}: {difference.max()}"
    else:
        text = [
            None if _is_null(v) or v in ("", b"") else (v.decode() if isinstance(v, bytes) else str(v)) for v in got
        ]
        assert text == [None if _is_null(v) else str(v) for v in expected], name


def assert_same_frame(got: pd.DataFrame, expected: pd.DataFrame, label: str, *, null_bool: bool | None = None) -> None:
    assert sorted(got.columns) == sorted(expected.columns), f"{label}: columns differ"
    assert len(got) == len(expected), f"{label}: {len(got)} rows instead of {len(expected)}"
    for name in expected.columns:
        assert_same_column(
            got[name].reset_index(drop=True), expected[name].reset_index(drop=True), label, null_bool=null_bool
        )


# ---------------------------------------------------------------- answers


def test_cone_search_returns_the_objects_in_the_cone(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["dr.Object"]
    ra0, dec0 = CONE_CENTRE
    distance = separation_deg(objects["ra"].to_numpy(), objects["dec"].to_numpy(), ra0, dec0)
    assert np.abs(distance - CONE_RADIUS_DEG).min() > 1e-6, "an object sits on the cone's edge: move the cone"
    expected = set(objects.loc[distance < CONE_RADIUS_DEG, "objectId"].astype(int))
    assert 20 < len(expected) < len(objects), "the cone should hold some of the objects, not none or all"

    result = pyvo.dal.TAPService(tap_url).run_sync(
        "SELECT objectId, ra, dec FROM dr.Object "
        f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {CONE_RADIUS_DEG}))"
    )
    table = result.to_table()
    assert result.query_status == "OK"
    assert sorted(int(i) for i in table["objectId"]) == sorted(expected)
    assert len(table) == len(expected), "rows repeated"


def test_group_by_count_matches_pandas(tap_url: str, tap_cluster: TapCluster) -> None:
    sources = tap_cluster.tables["apdb.DiaSource"]
    expected = sources.groupby("band").size().to_dict()
    table = (
        pyvo.dal.TAPService(tap_url)
        .run_sync("SELECT band, COUNT(*) AS n FROM apdb.DiaSource GROUP BY band ORDER BY band")
        .to_table()
    )
    assert {str(band): int(n) for band, n in zip(table["band"], table["n"], strict=True)} == expected
    assert list(table["band"]) == sorted(expected)
    total = pyvo.dal.TAPService(tap_url).run_sync("SELECT COUNT(*) AS n FROM dr.Source").to_table()
    assert int(total["n"][0]) == len(tap_cluster.tables["dr.Source"])


def test_top_with_order_by_matches_pandas(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["dr.Object"]
    expected = objects.nlargest(7, "dec")
    table = (
        pyvo.dal.TAPService(tap_url)
        .run_sync("SELECT TOP 7 objectId, ra, dec FROM dr.Object ORDER BY dec DESC")
        .to_table()
    )
    assert [int(i) for i in table["objectId"]] == [int(i) for i in expected["objectId"]]
    np.testing.assert_allclose(np.asarray(table["dec"]), expected["dec"].to_numpy(), rtol=1e-15)


def test_column_metadata_from_tap_schema_reaches_the_fields(tap_url: str) -> None:
    service = pyvo.dal.TAPService(tap_url)
    published = service.run_sync(
        "SELECT column_name, unit, ucd, description FROM TAP_SCHEMA.columns WHERE table_name = 'apdb.DiaObject'"
    ).to_table()
    by_name = {str(row["column_name"]): row for row in published}
    assert str(by_name["ra"]["unit"]) == "deg" and str(by_name["ra"]["ucd"]) == "pos.eq.ra;meta.main"

    result = service.run_sync("SELECT TOP 3 diaObjectId, ra, dec, nDiaSources FROM apdb.DiaObject")
    assert [field.name for field in result.fielddescs] == ["diaObjectId", "ra", "dec", "nDiaSources"]
    for field in result.fielddescs:
        row = by_name[field.name]

        def text(value: Any) -> str | None:
            return None if _is_null(value) or str(value) == "" else str(value)

        assert text(field.unit) == text(row["unit"]), field.name
        assert text(field.ucd) == text(row["ucd"]), field.name
        assert text(field.description) == text(row["description"]), field.name
    assert str(result.fielddescs[1].unit) == "deg"


def test_tap_schema_is_queryable(tap_url: str, tap_cluster: TapCluster) -> None:
    service = pyvo.dal.TAPService(tap_url)
    schemas = {str(s) for s in service.run_sync("SELECT schema_name FROM TAP_SCHEMA.schemas").to_table()["schema_name"]}
    assert {"apdb", "dr", "TAP_SCHEMA"} <= schemas
    tables = {str(t) for t in service.run_sync("SELECT table_name FROM TAP_SCHEMA.tables").to_table()["table_name"]}
    assert {"apdb.DiaObject", "apdb.DiaSource", "dr.Object", "dr.Source"} <= tables
    columns = service.run_sync(
        "SELECT COUNT(*) AS n FROM TAP_SCHEMA.columns WHERE table_name = 'apdb.DiaSource'"
    ).to_table()
    assert int(columns["n"][0]) == len(tap_cluster.tables["apdb.DiaSource"].columns)


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(("parameter", "value", "media_type", "reader"), FORMATS)
def test_every_format_reads_back_the_same_values(
    tap_url: str, tap_cluster: TapCluster, parameter: str | None, value: str | None, media_type: str, reader: str
) -> None:
    extra = {parameter: value} if parameter and value else {}
    response = sync(tap_url, query_params(DIA_SOURCES, **extra))
    assert response.status_code == 200, response.text[:2000]
    assert response.headers["content-type"].startswith(media_type), response.headers["content-type"]
    got = READERS[reader](response.content)
    expected = tap_cluster.tables["apdb.DiaSource"].sort_values("diaSourceId")
    # FITS logicals have no NULL: the writer sends NULL as the zero byte, which astropy reads as False.
    assert_same_frame(got, expected, f"{parameter}={value}", null_bool=False if reader == "fits" else None)


def test_formats_agree_on_column_order(tap_url: str) -> None:
    orders = {}
    for reader, value in (("votable-td", "votable"), ("csv-pandas", "csv"), ("parquet", "parquet"), ("json", "json")):
        response = sync(tap_url, query_params("SELECT TOP 2 * FROM dr.Object ORDER BY objectId", RESPONSEFORMAT=value))
        orders[reader] = list(READERS[reader](response.content).columns)
    assert all(order == orders["votable-td"] for order in orders.values()), orders


# ---------------------------------------------------------------- MAXREC


def test_maxrec_truncates_and_marks_overflow(tap_url: str, tap_cluster: TapCluster) -> None:
    service = pyvo.dal.TAPService(tap_url)
    n_objects = len(tap_cluster.tables["apdb.DiaObject"])
    result = service.run_sync("SELECT diaObjectId FROM apdb.DiaObject", maxrec=5)
    assert len(result) == 5
    assert result.query_status == "OVERFLOW"
    exact = service.run_sync("SELECT diaObjectId FROM apdb.DiaObject", maxrec=n_objects)
    assert len(exact) == n_objects and exact.query_status == "OK", "MAXREC equal to the row count is no overflow"
    one_short = service.run_sync("SELECT diaObjectId FROM apdb.DiaObject", maxrec=n_objects - 1)
    assert len(one_short) == n_objects - 1 and one_short.query_status == "OVERFLOW"

    as_json = json.loads(
        sync(tap_url, query_params("SELECT diaObjectId FROM apdb.DiaObject", MAXREC="3", RESPONSEFORMAT="json")).content
    )
    assert len(as_json["data"]) == 3 and as_json["query_status"] == "OVERFLOW"
    as_csv = sync(tap_url, query_params("SELECT diaObjectId FROM apdb.DiaObject", MAXREC="3", RESPONSEFORMAT="csv"))
    assert len(pd.read_csv(io.BytesIO(as_csv.content))) == 3


def test_maxrec_zero_returns_metadata_only(tap_url: str) -> None:
    query = "SELECT diaObjectId, ra, dec FROM apdb.DiaObject"
    response = sync(tap_url, query_params(query, MAXREC="0"))
    assert response.status_code == 200, response.text
    table = votable_table(response.content)
    assert table.colnames == ["diaObjectId", "ra", "dec"] and len(table) == 0
    assert str(table["ra"].unit) == "deg"
    as_csv = sync(tap_url, query_params(query, MAXREC="0", RESPONSEFORMAT="csv"))
    assert as_csv.text.splitlines() == ["diaObjectId,ra,dec"]


def test_service_limits_lower_maxrec(start_service: StartService) -> None:
    with start_service(maxrec_default=4, maxrec_limit=10) as url:
        service = pyvo.dal.TAPService(url)
        with pytest.warns(DALOverflowWarning):
            default = service.run_sync("SELECT objectId FROM dr.Object")
        assert len(default) == 4 and default.query_status == "OVERFLOW"
        with pytest.warns(DALOverflowWarning, match="10 records"):
            capped = service.run_sync("SELECT objectId FROM dr.Object", maxrec=1000)
        assert len(capped) == 10 and capped.query_status == "OVERFLOW"


# ---------------------------------------------------------------- request forms


def test_get_post_and_case_insensitive_parameter_names(tap_url: str, tap_cluster: TapCluster) -> None:
    query = "SELECT diaObjectId FROM apdb.DiaObject ORDER BY diaObjectId"
    expected = sorted(int(i) for i in tap_cluster.tables["apdb.DiaObject"]["diaObjectId"])
    for method in ("GET", "POST"):
        response = sync(tap_url, query_params(query, RESPONSEFORMAT="csv"), method=method)
        assert response.status_code == 200, f"{method}: {response.text}"
        assert pd.read_csv(io.BytesIO(response.content))["diaObjectId"].tolist() == expected, method
    mixed = {"request": "doQuery", "lang": "adql", "Query": query, "responseFormat": "csv", "maxREC": "3"}
    for method in ("GET", "POST"):
        response = sync(tap_url, mixed, method=method)
        assert response.status_code == 200, f"{method}: {response.text}"
        assert pd.read_csv(io.BytesIO(response.content))["diaObjectId"].tolist() == expected[:3], method
    # REQUEST may be left out, and LANG may name an ADQL version
    bare = {"LANG": "ADQL-2.0", "QUERY": query, "RESPONSEFORMAT": "csv"}
    assert sync(tap_url, bare).status_code == 200


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"REQUEST": "getCapabilities", "LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM dr.Object"}, 400, "REQUEST"),
        ({"REQUEST": "doQuery", "QUERY": "SELECT TOP 1 ra FROM dr.Object"}, 400, "LANG"),
        ({"REQUEST": "doQuery", "LANG": "SQL", "QUERY": "SELECT TOP 1 ra FROM dr.Object"}, 400, "LANG"),
        ({"REQUEST": "doQuery", "LANG": "ADQL"}, 400, "QUERY"),
        ({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "   "}, 400, "QUERY"),
        (query_params("SELECT TOP 1 ra FROM dr.Object", FORMAT="application/x-excel"), 400, "application/x-excel"),
        (query_params("SELECT TOP 1 ra FROM dr.Object", RESPONSEFORMAT="votable/b9"), 400, "votable/b9"),
        (query_params("SELECT TOP 1 ra FROM dr.Object", MAXREC="-1"), 400, "MAXREC"),
        (query_params("SELECT TOP 1 ra FROM dr.Object", MAXREC="ten"), 400, "MAXREC"),
        (query_params("SELECT TOP 1 ra FROM dr.Object", MAXREC="1.5"), 400, "MAXREC"),
        (query_params("SELECT * FROM dr.NoSuchTable"), 400, "NoSuchTable"),
        (query_params("SELECT no_such_column FROM dr.Object"), 400, "no_such_column"),
        (query_params("SELECT 1/0 AS x FROM dr.Object"), 400, "division by zero"),
    ],
)
def test_bad_requests_get_a_votable_error(
    tap_url: str, params: dict[str, str], status: int, fragment: str, tap_cluster: TapCluster
) -> None:
    for method in ("POST", "GET"):
        response = sync(tap_url, params, method=method)
        assert_no_leak(response, (tap_cluster.cluster.coordinator_dsn,))
        error = error_of(response, status)
        assert fragment.lower() in error.message.lower(), f"{method}: {error.message}"


def test_empty_group_by_is_a_syntax_error(tap_url: str) -> None:
    response = sync(tap_url, query_params("SELECT COUNT(*) AS n FROM apdb.DiaSource GROUP BY "))
    assert "GROUP BY" in error_of(response, 400).message


def test_repeated_parameter_with_different_values_is_rejected(tap_url: str) -> None:
    params = [("LANG", "ADQL"), ("QUERY", "SELECT TOP 1 ra FROM dr.Object"), ("MAXREC", "1"), ("MAXREC", "2")]
    response = httpx.post(
        f"{tap_url}/sync",
        content=urlencode(params),
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=60,
    )
    assert "MAXREC" in error_of(response, 400).message


def test_malformed_adql_error_has_line_and_column(tap_url: str) -> None:
    response = sync(tap_url, query_params("SELECT objectId\nFROM dr.Object\nWHERE ra >< 3"))
    error = error_of(response, 400)
    assert error.infos.get("line") == "3", error
    assert error.infos.get("column", "").isdigit(), error
    assert "line 3" in error.message, error.message
    with pytest.raises(pyvo.dal.DALQueryError, match="line 3"):
        pyvo.dal.TAPService(tap_url).run_sync("SELECT objectId\nFROM dr.Object\nWHERE ra >< 3")


def test_unknown_paths_and_tables_are_votable_errors(tap_url: str) -> None:
    assert "NoSuchTable" in error_of(httpx.get(f"{tap_url}/tables/dr.NoSuchTable"), 404).message
    error_of(httpx.get(f"{tap_url}/no-such-endpoint"), 404)
    error_of(httpx.delete(f"{tap_url}/sync"), 405)


# ---------------------------------------------------------------- tokens and the query log


def test_token_access_and_the_query_log(start_service: StartService, tap_cluster: TapCluster) -> None:
    dsn = tap_cluster.cluster.coordinator_dsn
    owner = f"e2e-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        token = create_token(conn, owner)
    marker = int(uuid.uuid4().int % 10**9) + 1
    ok_query = f"SELECT objectId FROM dr.Object WHERE objectId <> -{marker}"
    overflow_query = f"SELECT objectId FROM dr.Object WHERE objectId <> -{marker + 1}"
    error_query = f"SELECT objectId FROM dr.NoSuchTable WHERE objectId <> -{marker}"
    with start_service(auth="token") as url:
        error_of(sync(url, query_params(ok_query)), 401)
        error_of(sync(url, query_params(ok_query), headers={"Authorization": "Bearer dms_not-a-token"}), 401)
        error_of(sync(url, query_params(ok_query), headers={"Authorization": f"Basic {token.secret}"}), 401)
        error_of(sync(url, query_params(ok_query), headers={"Authorization": "Bearer"}), 401)
        assert log_row_or_none(dsn, ok_query) is None, "a refused request must not run"

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token.secret}"
        service = pyvo.dal.TAPService(url, session=session)
        assert len(service.run_sync(ok_query)) == len(tap_cluster.tables["dr.Object"])
        assert len(service.run_sync(overflow_query, maxrec=3)) == 3
        refused = sync(url, query_params(error_query), headers={"Authorization": f"Bearer {token.secret}"})
        assert "NoSuchTable" in error_of(refused, 400).message

    assert log_row(dsn, ok_query) == {
        "owner": owner,
        "outcome": "ok",
        "rows": len(tap_cluster.tables["dr.Object"]),
        "error": None,
    }
    assert log_row(dsn, overflow_query) == {"owner": owner, "outcome": "overflow", "rows": 3, "error": None}
    failed = log_row(dsn, error_query)
    assert (failed["owner"], failed["outcome"]) == (owner, "error")
    assert "NoSuchTable" in str(failed["error"])


def log_row_or_none(dsn: str, query_text: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT outcome FROM dms.query_log WHERE query_text = %s", [query_text]).fetchone()


def test_client_disconnect_mid_stream_is_logged_as_aborted(tap_url: str, tap_cluster: TapCluster) -> None:
    """A result far larger than the socket buffers, abandoned after its first chunk."""
    n_rows = 50_000
    marker = uuid.uuid4().hex[:12]
    upload = "id,label\n" + "".join(f"{i},{marker * 8}\n" for i in range(n_rows))  # ~100 bytes a row
    query = f"SELECT id, label FROM TAP_UPLOAD.big WHERE label <> '{marker}'"
    params = query_params(query, MAXREC=str(n_rows), RESPONSEFORMAT="votable", UPLOAD="big,param:big")
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{tap_url}/sync", data=params, files={"big": ("big.csv", upload.encode(), "text/csv")}
        ) as r,
    ):
        assert r.status_code == 200
        first = next(r.iter_raw())
        assert first
    logged = log_row(tap_cluster.cluster.coordinator_dsn, query, timeout_s=10)
    assert logged["outcome"] == "aborted", logged
    assert logged["rows"] is not None and logged["rows"] < n_rows, logged


def test_a_running_service_answers_over_rows_loaded_into_new_chunks_after_it_started(
    make_cluster: Callable[..., Any],
) -> None:
    """A nightly load into sky the cluster had no chunk of is in the answers of a service already running."""
    from dms_db.catalog_service import deploy_schema_file
    from dms_db.config import ServiceConfig
    from loaders.bulk_load import load_inputs
    from loaders.simulate import SimulationConfig, simulate_survey
    from tests.api.server import running_service
    from tests.harness import make_scratch_dir

    cluster = make_cluster(2)
    deploy_schema_file(cluster.config, "apdb", chunk_order=6)

    def objects(ra_center: float, seed: int, id_offset: int) -> pd.DataFrame:
        survey = simulate_survey(
            SimulationConfig(seed=seed, n_objects=200, n_visits=4, radius_deg=0.5, ra_center=ra_center)
        )
        frame = survey.tables["apdb.DiaObject"].copy()
        frame["diaObjectId"] += id_offset
        return frame

    first, second = objects(60.0, 5, 0), objects(200.0, 6, 10**15)
    load_inputs(cluster.topology, "apdb.DiaObject", [first])
    config = cluster.config.model_copy(update={"service": ServiceConfig(results_dir=make_scratch_dir("dms-db-tap-"))})
    with running_service(config, cluster.topology) as url:
        service = pyvo.dal.TAPService(url)
        listed = "SELECT diaObjectId FROM apdb.DiaObject"
        assert sorted(service.search(listed).to_table()["diaObjectId"]) == sorted(first["diaObjectId"])
        load_inputs(cluster.topology, "apdb.DiaObject", [second])
        new_sky = f"{listed} WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(200, -30, 1))"  # only the new chunks
        assert sorted(service.search(new_sky).to_table()["diaObjectId"]) == sorted(second["diaObjectId"])
        after = sorted(service.search(listed).to_table()["diaObjectId"])
        assert after == sorted([*first["diaObjectId"], *second["diaObjectId"]])
