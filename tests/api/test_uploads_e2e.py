"""TAP UPLOAD end to end: tables sent with the query (pyvo, raw multipart) or by URL, joined with the catalog.

Crossmatch answers are computed independently, every pair's distance with
numpy on the simulated survey's frames; id joins with pandas.  Tables
uploaded by URL are served by a small HTTP server in a thread of the tests.
Every refused upload must be a VOTable error with the right status: 413 for
an upload over the service's limits, 400 for anything malformed or that
cannot be fetched.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pandas as pd
import pytest
import pyvo
from astropy.io import votable
from astropy.table import Table

from api.tap.params import UploadReference
from api.tap.uploads import UploadError, read_upload
from tests.api.conftest import TapCluster
from tests.api.tap_checks import assert_no_leak, error_of, query_params

pytestmark = pytest.mark.timeout(300)

StartService = Callable[..., AbstractContextManager[str]]

RADIUS_ARCSEC = 3.0


def near_positions(catalog: pd.DataFrame, n_near: int, n_far: int, seed: int) -> Table:
    """Positions about 1 arcsec from ``n_near`` catalog rows, and ``n_far`` positions far from every row."""
    rng = np.random.default_rng(seed)
    picked = catalog.sample(n_near, random_state=seed)
    dec = picked["dec"].to_numpy() + rng.normal(0, 1 / 3600, n_near)
    ra = picked["ra"].to_numpy() + rng.normal(0, 1 / 3600, n_near) / np.cos(np.radians(dec))
    far_ra = rng.uniform(200, 220, n_far)  # the survey is around RA 60, Dec -30
    far_dec = rng.uniform(20, 40, n_far)
    return Table(
        {
            "id": np.arange(1, n_near + n_far + 1, dtype=np.int64),
            "ra": np.concatenate([ra, far_ra]),
            "dec": np.concatenate([dec, far_dec]),
        }
    )


def separation_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distances (haversine) between every position of 1 (rows) and of 2 (columns)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    d_ra = ra1[:, None] - ra2[None, :]
    d_dec = dec1[:, None] - dec2[None, :]
    a = np.sin(d_dec / 2) ** 2 + np.cos(dec1)[:, None] * np.cos(dec2)[None, :] * np.sin(d_ra / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(a))) * 3600


def pairs_within(upload: Table, catalog: pd.DataFrame, id_column: str, radius_arcsec: float) -> set[tuple[int, int]]:
    """(upload id, catalog id) of every pair closer than the radius (all pairs, numpy); none may sit on the edge."""
    separation = separation_arcsec(upload["ra"], upload["dec"], catalog["ra"].to_numpy(), catalog["dec"].to_numpy())
    assert np.abs(separation - radius_arcsec).min() > 1e-4, "a pair sits on the radius: change the seed"
    i, j = np.nonzero(separation < radius_arcsec)
    ids = np.asarray(upload["id"])
    catalog_ids = catalog[id_column].to_numpy()
    return {(int(ids[a]), int(catalog_ids[b])) for a, b in zip(i, j, strict=True)}


def multipart(url: str, query: str, parts: dict[str, tuple[str, bytes, str]], upload: str, **extra: str):
    """A sync query with uploaded parts, sent as multipart/form-data by hand."""
    params = query_params(query, UPLOAD=upload, **extra)
    response = httpx.post(f"{url}/sync", data=params, files=parts, timeout=60)
    assert_no_leak(response)
    return response


def test_pyvo_upload_crossmatch_with_dia_objects(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["apdb.DiaObject"]
    upload = near_positions(objects, n_near=25, n_far=10, seed=3)
    expected = pairs_within(upload, objects, "diaObjectId", RADIUS_ARCSEC)
    assert len(expected) >= 20, "most uploaded positions should have a match"
    radius = RADIUS_ARCSEC / 3600
    result = pyvo.dal.TAPService(tap_url).run_sync(
        "SELECT u.id, o.diaObjectId, o.ra, o.dec FROM TAP_UPLOAD.mine AS u, apdb.DiaObject AS o "
        f"WHERE 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', u.ra, u.dec, {radius!r}))",
        uploads={"mine": upload},
    )
    table = result.to_table()
    got = [(int(a), int(b)) for a, b in zip(table["id"], table["diaObjectId"], strict=True)]
    assert len(got) == len(set(got)), "pairs repeated (overlap rows counted twice?)"
    assert set(got) == expected


def test_pyvo_upload_id_join(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["apdb.DiaObject"]
    known = objects["diaObjectId"].to_numpy()[::3]
    ids = np.concatenate([known, [-1, -2, 123]]).astype(np.int64)
    upload = Table({"oid": ids, "tag": [f"t{i}" for i in range(ids.size)]})
    result = pyvo.dal.TAPService(tap_url).run_sync(
        "SELECT u.tag, o.diaObjectId, o.nDiaSources FROM TAP_UPLOAD.ids AS u "
        "JOIN apdb.DiaObject AS o ON o.diaObjectId = u.oid ORDER BY o.diaObjectId",
        uploads={"ids": upload},
    )
    got = result.to_table().to_pandas()
    expected = (
        upload.to_pandas()
        .merge(objects, left_on="oid", right_on="diaObjectId")
        .sort_values("diaObjectId")
        .reset_index(drop=True)
    )
    assert got["diaObjectId"].tolist() == expected["diaObjectId"].tolist()
    assert got["tag"].astype(str).tolist() == expected["tag"].tolist()
    assert got["nDiaSources"].tolist() == expected["nDiaSources"].tolist()


def test_csv_and_binary2_uploads_over_raw_multipart(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["dr.Object"]
    upload = near_positions(objects, n_near=40, n_far=5, seed=8)
    expected = pairs_within(upload, objects, "objectId", RADIUS_ARCSEC)
    query = (
        "SELECT c.id, o.objectId FROM TAP_UPLOAD.cat AS c JOIN dr.Object AS o "
        f"ON 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', c.ra, c.dec, {RADIUS_ARCSEC / 3600!r}))"
    )
    as_csv = io.StringIO()
    upload.write(as_csv, format="ascii.csv")
    as_binary2 = io.BytesIO()
    votable.from_table(upload).to_xml(as_binary2, tabledata_format="binary2")
    for label, part in (
        ("csv", ("cat.csv", as_csv.getvalue().encode(), "text/csv")),
        ("binary2", ("cat.xml", as_binary2.getvalue(), "application/x-votable+xml")),
    ):
        response = multipart(tap_url, query, {"table1": part}, "cat,param:table1", RESPONSEFORMAT="csv")
        assert response.status_code == 200, f"{label}: {response.text}"
        got = pd.read_csv(io.BytesIO(response.content))
        assert set(zip(got["id"], got["objectId"], strict=True)) == expected, label
        assert len(got) == len(expected), f"{label}: pairs repeated"


def test_uploads_over_the_limits_get_413(start_service: StartService) -> None:
    rows = Table({"id": np.arange(11, dtype=np.int64), "ra": np.full(11, 60.0), "dec": np.full(11, -30.0)})
    text = io.StringIO()
    rows.write(text, format="ascii.csv")
    small = text.getvalue().encode()
    large = b"id,note\n" + b"".join(f"{i},{'x' * 90}\n".encode() for i in range(5))
    query = "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t"
    with start_service(upload_max_rows=10, upload_max_bytes=400) as url:
        assert len(small) <= 400 and len(large) > 400
        too_many = error_of(multipart(url, query, {"t": ("t.csv", small, "text/csv")}, "t,param:t"), 413)
        assert "10" in too_many.message and "rows" in too_many.message
        too_big = error_of(multipart(url, query, {"t": ("t.csv", large, "text/csv")}, "t,param:t"), 413)
        assert "400" in too_big.message and "bytes" in too_big.message
        with pytest.raises(pyvo.dal.DALQueryError, match="limit"):
            pyvo.dal.TAPService(url).run_sync(query, uploads={"t": rows})
        fits_in = multipart(url, query, {"t": ("t.csv", small[: small.rindex(b"\n10,")], "text/csv")}, "t,param:t")
        assert fits_in.status_code == 200, fits_in.text


GOOD_CSV = ("t.csv", b"id,ra,dec\n1,60.0,-30.0\n", "text/csv")


@pytest.mark.parametrize(
    ("upload", "parts", "fragment"),
    [
        ("t,param:missing", {"other": GOOD_CSV}, "missing"),
        ("t,param:t", {}, "'t'"),
        ("t", {"t": GOOD_CSV}, "name,uri"),
        ("t,", {"t": GOOD_CSV}, "name,uri"),
        ("1t,param:t", {"t": GOOD_CSV}, "1t"),
        ("t-x,param:t", {"t": GOOD_CSV}, "t-x"),
        ("t,param:t;t,param:t", {"t": GOOD_CSV}, "twice"),
        ("t,ftp://example.org/t.xml", {"t": GOOD_CSV}, "ftp://example.org/t.xml"),
        ("t,https:example.org", {"t": GOOD_CSV}, "https:example.org"),
        ("t,param:", {"t": GOOD_CSV}, "param:"),
        ("t,param:t", {"t": ("t.xml", b"<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE><FIELD", "text/xml")}, "t"),
        (
            "t,param:t",
            {
                "t": (
                    "t.xml",
                    b'<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE><TABLE>'
                    b'<FIELD name="a" datatype="int"/><DATA><TABLEDATA><TR><TD>x</TD></TR>'
                    b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>",
                    "text/xml",
                )
            },
            "t",
        ),
        ("t,param:t", {"t": ("t.csv", b"", "text/csv")}, "empty"),
        ("t,param:t", {"t": ("t.csv", b"   \n", "text/csv")}, "empty"),
        ("t,param:t", {"t": ("t.csv", b"2mass,ra\n1,2\n", "text/csv")}, "2mass"),
        ("t,param:t", {"t": ("t.csv", b"id,ra\n1,2,3\n4\n", "text/csv")}, "t"),
        ("t,param:t", {"t": ("t.bin", bytes(range(256)) * 4, "application/octet-stream")}, "t"),
    ],
)
def test_bad_uploads_get_a_400_votable_error(
    tap_url: str, upload: str, parts: dict[str, tuple[str, bytes, str]], fragment: str
) -> None:
    response = multipart(tap_url, "SELECT * FROM TAP_UPLOAD.t", parts or {"unused": GOOD_CSV}, upload)
    error = error_of(response, 400)
    assert fragment in error.message, error.message


def test_query_of_an_upload_not_sent_is_a_400(tap_url: str) -> None:
    response = multipart(tap_url, "SELECT * FROM TAP_UPLOAD.other", {"t": GOOD_CSV}, "t,param:t")
    assert "other" in error_of(response, 400).message.lower()


def test_multipart_without_upload_is_an_ordinary_query(tap_url: str) -> None:
    response = httpx.post(
        f"{tap_url}/sync",
        data=query_params("SELECT TOP 2 objectId FROM dr.Object", RESPONSEFORMAT="csv"),
        files={"stray": GOOD_CSV},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert len(pd.read_csv(io.BytesIO(response.content))) == 2


# ---------------------------------------------------------------- uploads by URL

SLOW_S = 2.0
"""How long the table server takes to answer under /slow/."""


class TableServer(ThreadingHTTPServer):
    """Serves ``documents[name]`` at ``/<name>``, at ``/unsized/<name>`` (no Content-Length) and ``/slow/<name>``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TableHandler)
        self.documents: dict[str, bytes] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TableHandler(BaseHTTPRequestHandler):
    server: TableServer

    def do_GET(self) -> None:
        mode, _, name = self.path.lstrip("/").rpartition("/")
        body = self.server.documents.get(name)
        if body is None:
            self.send_error(404, "no such table")
            return
        if mode == "slow":
            time.sleep(SLOW_S)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-votable+xml")
        if mode != "unsized":  # HTTP/1.0 without a length: the body ends when the connection closes
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def table_server() -> Iterator[TableServer]:
    server = TableServer()
    thread = threading.Thread(target=server.serve_forever, name="table-server", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def votable_bytes(table: Table) -> bytes:
    out = io.BytesIO()
    votable.from_table(table).to_xml(out)
    return out.getvalue()


def test_upload_by_url_in_sync_and_async_queries(
    tap_url: str, tap_cluster: TapCluster, table_server: TableServer
) -> None:
    objects = tap_cluster.tables["dr.Object"]
    upload = near_positions(objects, n_near=30, n_far=5, seed=11)
    expected = pairs_within(upload, objects, "objectId", RADIUS_ARCSEC)
    document = votable_bytes(upload)
    table_server.documents["near.xml"] = document
    url = f"{table_server.url}/near.xml"
    query = (
        "SELECT u.id, o.objectId FROM TAP_UPLOAD.near AS u JOIN dr.Object AS o "
        f"ON 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', u.ra, u.dec, {RADIUS_ARCSEC / 3600!r}))"
    )
    service = pyvo.dal.TAPService(tap_url)
    for run in (service.run_sync, service.run_async):
        table = run(query, uploads={"near": url}).to_table()
        got = [(int(a), int(b)) for a, b in zip(table["id"], table["objectId"], strict=True)]
        assert sorted(got) == sorted(expected), run.__name__

    # An async job fetches the table when it is created and keeps it: the document may go away before it runs.
    job = service.submit_job(query, uploads={"near": url})
    del table_server.documents["near.xml"]
    assert httpx.get(f"{job.url}/uploads/near", timeout=30).content == document
    job.run()
    job.wait()
    assert job.phase == "COMPLETED"
    assert len(job.fetch_result().to_table()) == len(expected)
    job.delete()


def test_upload_urls_that_cannot_be_fetched_get_400(tap_url: str, table_server: TableServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/t.xml"  # nobody listens once the probe closes
    before = httpx.get(f"{tap_url}/async", timeout=30).text
    for url, fragment in ((f"{table_server.url}/absent.xml", "404"), (closed, "could not be fetched")):
        for endpoint in ("sync", "async"):
            params = query_params("SELECT * FROM TAP_UPLOAD.t", UPLOAD=f"t,{url}")
            error = error_of(httpx.post(f"{tap_url}/{endpoint}", data=params, timeout=60), 400)
            assert url in error.message and fragment in error.message, (endpoint, error.message)
    assert httpx.get(f"{tap_url}/async", timeout=30).text == before  # no job was created


def test_upload_urls_over_the_byte_limit_get_413(start_service: StartService, table_server: TableServer) -> None:
    table_server.documents["big.csv"] = b"id,note\n" + b"".join(f"{i},{'x' * 90}\n".encode() for i in range(20))
    table_server.documents["fits.csv"] = b"id,ra,dec\n1,60.0,-30.0\n"
    query = "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t"
    with start_service(upload_max_bytes=400) as url:
        # With a Content-Length the service refuses at once; without one, once it has read past the limit.
        for path in ("big.csv", "unsized/big.csv"):
            for endpoint in ("sync", "async"):
                params = query_params(query, UPLOAD=f"t,{table_server.url}/{path}")
                error = error_of(httpx.post(f"{url}/{endpoint}", data=params, timeout=60), 413)
                assert "400 bytes" in error.message, error.message
        params = query_params(query, UPLOAD=f"t,{table_server.url}/unsized/fits.csv", RESPONSEFORMAT="csv")
        fits_in = httpx.post(f"{url}/sync", data=params, timeout=60)
        assert fits_in.status_code == 200 and fits_in.text.split() == ["n", "1"], fits_in.text


def test_a_service_that_fetches_no_urls_says_so(start_service: StartService, table_server: TableServer) -> None:
    table_server.documents["small.csv"] = b"id,ra,dec\n1,60.0,-30.0\n"
    with start_service(upload_from_urls=False) as url:
        capabilities = httpx.get(f"{url}/capabilities", timeout=30).text
        assert "upload-inline" in capabilities and "upload-http" not in capabilities
        for endpoint in ("sync", "async"):
            params = query_params("SELECT * FROM TAP_UPLOAD.t", UPLOAD=f"t,{table_server.url}/small.csv")
            error = error_of(httpx.post(f"{url}/{endpoint}", data=params, timeout=60), 400)
            assert "does not fetch uploads from URLs" in error.message, error.message


def test_upload_url_that_answers_too_slowly_is_a_400(table_server: TableServer) -> None:
    table_server.documents["slow.csv"] = GOOD_CSV[1]
    reference = UploadReference("t", f"{table_server.url}/slow/slow.csv")
    with pytest.raises(UploadError, match=r"within 0\.2 s") as raised:
        asyncio.run(read_upload(reference, {}, max_bytes=1000, timeout_s=0.2))
    assert raised.value.http_status == 400
