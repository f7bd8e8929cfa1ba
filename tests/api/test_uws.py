"""TAP async jobs (UWS 1.1) end to end: pyvo and raw httpx against the service under a real uvicorn.

The jobs run on the loaded 2-worker cluster of ``tests/api/conftest.py``.
Long-running jobs use a triple self-join of ``dr.CcdVisit`` (a few billion
combinations, minutes of work) that the tests abort, time out or interrupt;
each such query carries a marker literal so that its worker statements can be
found in ``pg_stat_activity`` and shown to be cancelled.  Assertions are on
phases and documents, never on how long something took.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import pyvo
import requests
from astropy.io import votable
from psycopg.conninfo import conninfo_to_dict
from pyvo.io.uws import parse_job, parse_job_list
from pyvo.io.uws.endpoint import JobFile

import api.tap.server
from api.tap.app import create_app
from dms_db.config import DmsConfig
from dms_db.tokens import create_token
from dms_db.topology import Topology
from tests.api.conftest import TapCluster
from tests.api.tap_checks import assert_no_leak, error_of, log_row, query_params

pytestmark = pytest.mark.timeout(300)

StartService = Callable[..., AbstractContextManager[str]]

FINAL_PHASES = {"COMPLETED", "ERROR", "ABORTED"}
UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
JOB_ELEMENT_ORDER = [
    "jobId",
    "runId",
    "ownerId",
    "phase",
    "quote",
    "creationTime",
    "startTime",
    "endTime",
    "executionDuration",
    "destruction",
    "parameters",
    "results",
    "errorSummary",
    "jobInfo",
]


# ---------------------------------------------------------------- helpers


def heavy_query() -> tuple[str, str]:
    """A query that runs for minutes, and the marker literal that finds its worker statements."""
    marker = str(-uuid.uuid4().int % 10**9 - 10**9)
    query = (
        "SELECT COUNT(*) AS n FROM dr.CcdVisit AS a JOIN dr.CcdVisit AS b ON a.ccdVisitId <> b.ccdVisitId "
        f"JOIN dr.CcdVisit AS c ON c.ccdVisitId <> b.ccdVisitId WHERE a.ccdVisitId > {marker}"
    )
    return query, marker


def create_job(url: str, query: str, *, headers: dict[str, str] | None = None, **extra: str) -> str:
    """POST a new job; returns the job URL the service redirects to."""
    response = httpx.post(f"{url}/async", data=query_params(query, **extra), headers=headers, timeout=30)
    assert_no_leak(response)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(f"{url}/async/")
    return location


def job_of(job_url: str, *, headers: dict[str, str] | None = None, **params: str) -> JobFile:
    """GET and parse a job document with pyvo's UWS parser."""
    response = httpx.get(job_url, params=params, headers=headers, timeout=90)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return parse_job(io.BytesIO(response.content))


def post(url: str, headers: dict[str, str] | None = None, **data: str) -> httpx.Response:
    """A form POST that is expected to redirect (303)."""
    response = httpx.post(url, data=data, headers=headers, timeout=30)
    assert_no_leak(response)
    return response


def wait_until_final(job_url: str, *, headers: dict[str, str] | None = None) -> JobFile:
    """Block with WAIT until the job reaches COMPLETED, ERROR or ABORTED."""
    job = job_of(job_url, headers=headers)
    for _ in range(10):
        if job.phase in FINAL_PHASES:
            return job
        job = job_of(job_url, headers=headers, WAIT="60")
    raise AssertionError(f"job {job_url} is still {job.phase}")


def wait_until_executing(job_url: str) -> JobFile:
    """Block with WAIT while the job is PENDING or QUEUED."""
    job = job_of(job_url)
    for _ in range(10):
        if job.phase not in ("PENDING", "QUEUED"):
            return job
        job = job_of(job_url, WAIT="60", PHASE=job.phase)
    raise AssertionError(f"job {job_url} is still {job.phase}")


def active_statements(cluster: TapCluster, marker: str) -> int:
    """Statements of the query with ``marker`` running on the workers.

    A worker runs a query as a server-side cursor, so after its DECLARE the
    active statement is a ``FETCH`` that does not show the query text: any
    active FETCH in a worker database counts (the tests run one heavy query
    at a time).
    """
    databases = [conninfo_to_dict(node.dsn)["dbname"] for node in cluster.cluster.topology.workers]
    with psycopg.connect(cluster.cluster.coordinator_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = ANY(%s) "
            "AND (query LIKE %s OR query LIKE 'FETCH %%') AND pid <> pg_backend_pid()",
            [databases, f"%{marker}%"],
        ).fetchone()
    return int(row[0]) if row else 0


def assert_statements_run(cluster: TapCluster, marker: str, attempts: int = 100) -> None:
    """The worker statements of a query are seen running (so that their end shows a cancellation)."""
    for _ in range(attempts):
        if active_statements(cluster, marker) > 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"no statement with {marker} is seen running on the workers")


def assert_statements_end(cluster: TapCluster, marker: str, attempts: int = 100) -> None:
    """The worker statements of a cancelled query go away (polled; cancellation is asynchronous)."""
    for _ in range(attempts):
        if active_statements(cluster, marker) == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"statements with {marker} still run on the workers")


def job_row(dsn: str, job_id: str) -> dict[str, object] | None:
    """A job's row in the coordinator, read directly."""
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute(
            "SELECT phase, error_type, error_summary, result_path FROM dms.uws_job WHERE job_id = %s", [job_id]
        )
        row = cursor.fetchone()
    return None if row is None else dict(zip(("phase", "error_type", "error_summary", "result_path"), row, strict=True))


def job_id_of(job_url: str) -> str:
    return job_url.rsplit("/", 1)[1]


def csv_rows(response: httpx.Response) -> list[str]:
    return response.text.strip().splitlines()[1:]


@pytest.fixture
def short_sweeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Services started by ``start_service`` in this test sweep expired jobs every 0.2 s."""

    def build(config: DmsConfig, *, topology: Topology | None = None):
        app = create_app(config, topology=topology)
        app.state.job_sweep_interval_s = 0.2
        return app

    monkeypatch.setattr(api.tap.server, "create_app", build)
    yield


# ---------------------------------------------------------------- pyvo


def test_pyvo_run_async_round_trip(tap_url: str, tap_cluster: TapCluster) -> None:
    objects = tap_cluster.tables["dr.Object"]
    with requests.Session() as session:
        result = pyvo.dal.TAPService(tap_url, session=session).run_async(
            "SELECT objectId FROM dr.Object ORDER BY objectId"
        )
    assert [int(v) for v in result["objectId"]] == sorted(int(v) for v in objects["objectId"])


def test_pyvo_submit_run_wait_fetch_delete(
    tap_url: str, tap_cluster: TapCluster, request: pytest.FixtureRequest
) -> None:
    session = requests.Session()
    request.addfinalizer(session.close)
    service = pyvo.dal.TAPService(tap_url, session=session)
    job = service.submit_job("SELECT TOP 7 diaSourceId FROM apdb.DiaSource ORDER BY diaSourceId", runid="my-run")
    assert job.phase == "PENDING"
    assert job.job.runid == "my-run"
    assert job.owner == "anonymous"
    job.run()
    job.wait()
    assert job.phase == "COMPLETED"
    assert job.result_uri == f"{job.url}/results/result"
    result = job.fetch_result()
    expected = sorted(int(v) for v in tap_cluster.tables["apdb.DiaSource"]["diaSourceId"])[:7]
    assert [int(v) for v in result.to_table()["diaSourceId"]] == expected
    url = job.url
    job.delete()
    assert httpx.get(url, timeout=30).status_code == 404
    listed = parse_job_list(io.BytesIO(httpx.get(f"{tap_url}/async", timeout=30).content))
    assert job_id_of(url) not in {ref.jobid for ref in listed}


# ---------------------------------------------------------------- documents


def test_job_document_follows_uws_1_1(tap_url: str) -> None:
    query = "SELECT TOP 3 objectId FROM dr.Object ORDER BY objectId"
    job_url = create_job(tap_url, query, RUNID="doc-check", FORMAT="csv", MAXREC="2")
    pending = httpx.get(job_url, timeout=30)
    root = ET.fromstring(pending.content)
    assert root.tag == f"{UWS}job" and root.get("version") == "1.1"
    tags = [child.tag.removeprefix(UWS) for child in root]
    assert tags == [tag for tag in JOB_ELEMENT_ORDER if tag in tags]
    assert {"jobId", "ownerId", "phase", "executionDuration", "destruction", "startTime", "endTime"} <= set(tags)

    job = parse_job(io.BytesIO(pending.content))
    assert (job.jobid, job.runid, job.ownerid, job.phase) == (job_id_of(job_url), "doc-check", "anonymous", "PENDING")
    assert job.version == "1.1"
    parameters = {p.id_: p.content for p in job.parameters}
    assert parameters["query"] == query and parameters["format"] == "csv" and parameters["maxrec"] == "2"
    assert "phase" not in parameters
    assert len(job.results) == 0

    assert post(f"{job_url}/phase", PHASE="run").status_code == 303  # values are case-insensitive
    done = wait_until_final(job_url)
    assert done.phase == "COMPLETED"
    assert done.starttime is not None and done.endtime is not None
    (result,) = done.results
    assert result.id_ == "result" and result.href == f"{job_url}/results/result"
    assert result.mimetype.startswith("text/csv")
    body = httpx.get(result.href, timeout=30)
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/csv")
    assert int(result.size) == len(body.content)
    assert len(csv_rows(body)) == 2  # MAXREC

    results = ET.fromstring(httpx.get(f"{job_url}/results", timeout=30).content)
    assert results.tag == f"{UWS}results"
    # Only the attributes UWS 1.1 declares for uws:result: taplint validates the documents against its schema.
    xlink = "{http://www.w3.org/1999/xlink}"
    assert set(results[0].attrib) == {"id", f"{xlink}type", f"{xlink}href", "mime-type", "size"}
    assert httpx.get(f"{job_url}/phase", timeout=30).text == "COMPLETED"
    assert httpx.get(f"{job_url}/owner", timeout=30).text == "anonymous"
    assert httpx.get(f"{job_url}/quote", timeout=30).status_code == 200
    assert httpx.get(f"{job_url}/error", timeout=30).status_code == 404
    parameters_doc = ET.fromstring(httpx.get(f"{job_url}/parameters", timeout=30).content)
    assert parameters_doc.tag == f"{UWS}parameters"
    assert {p.get("id"): p.text for p in parameters_doc}["query"] == query


def test_bad_query_parameters_create_a_job_that_fails_when_it_runs(tap_url: str) -> None:
    # UWS and TAP 1.1 want a job created (303) whatever its query, and an ERROR with an error document when it runs.
    for params, expected, error_type in (
        ({"LANG": "ADQL"}, "QUERY", "TapParameterError"),
        (query_params("SELECT 1", FORMAT="no-such-format"), "no-such-format", "UnknownFormat"),
        (query_params("SELECT 1", MAXREC="many"), "MAXREC", "TapParameterError"),
        ({"LANG": "SQL", "QUERY": "SELECT 1"}, "LANG=SQL", "TapParameterError"),
        (query_params("SELECT 1", REQUEST="getCapabilities"), "REQUEST", "TapParameterError"),
    ):
        response = httpx.post(f"{tap_url}/async", data={**params, "PHASE": "RUN"}, timeout=30)
        assert response.status_code == 303, response.text
        job_url = response.headers["location"]
        job = wait_until_final(job_url)
        assert job.phase == "ERROR", (params, job.phase)
        assert job.errorsummary.type_ == "fatal" and job.errorsummary.has_detail
        assert expected in job.errorsummary.message.content, (params, job.errorsummary.message.content)
        text, infos = _votable_error(httpx.get(f"{job_url}/error", timeout=30))
        assert expected in text and infos["error_type"] == error_type
        error_of(httpx.get(f"{job_url}/results/result", timeout=30), 404)

    # Parameters changed while PENDING are checked when the job runs, too.
    job_url = create_job(tap_url, "SELECT TOP 1 objectId FROM dr.Object")
    assert post(f"{job_url}/parameters", MAXREC="-1").status_code == 303
    assert post(f"{job_url}/phase", PHASE="RUN").status_code == 303
    failed = wait_until_final(job_url)
    assert failed.phase == "ERROR" and "MAXREC=-1" in failed.errorsummary.message.content


def test_requests_that_cannot_make_a_job_create_none(tap_url: str) -> None:
    before = parse_job_list(io.BytesIO(httpx.get(f"{tap_url}/async", timeout=30).content))
    for params in (
        query_params("SELECT 1", PHASE="EXECUTING"),
        query_params("SELECT 1", UPLOAD="no-comma"),
        query_params("SELECT 1", UPLOAD="t,ftp://example.org/t.xml"),
        query_params("SELECT 1", UPLOAD="t,param:a;t,param:b"),
    ):
        error_of(httpx.post(f"{tap_url}/async", data=params, timeout=30), 400)
    after = parse_job_list(io.BytesIO(httpx.get(f"{tap_url}/async", timeout=30).content))
    assert {ref.jobid for ref in after} == {ref.jobid for ref in before}
    error_of(httpx.get(f"{tap_url}/async/no-such-job", timeout=30), 404)
    error_of(httpx.get(f"{tap_url}/async?LAST=0", timeout=30), 400)
    error_of(httpx.get(f"{tap_url}/async?PHASE=DONE", timeout=30), 400)


def test_control_characters_in_client_text_keep_documents_readable(tap_url: str) -> None:
    nul = query_params("SELECT TOP 1 ra FROM dr.Object", RUNID="run\x00id")
    assert "NUL" in error_of(httpx.post(f"{tap_url}/async", data=nul, timeout=30), 400).message
    params = query_params("SELECT TOP 1 ra FROM dr.Object -- tab\there\x01", RUNID="run\x1bid")
    created = httpx.post(f"{tap_url}/async", data=params, timeout=30)
    job_url = created.headers["location"]
    job = parse_job(io.BytesIO(httpx.get(job_url, timeout=30).content))
    assert job.runid == "runid"
    listed = parse_job_list(io.BytesIO(httpx.get(f"{tap_url}/async", timeout=30).content))
    assert any(ref.runid == "runid" for ref in listed)
    httpx.delete(job_url, timeout=30)


def test_job_list_filters(tap_url: str) -> None:
    pending = create_job(tap_url, "SELECT TOP 1 objectId FROM dr.Object", RUNID="list-a")
    created_after = job_of(pending).creationtime
    completed = create_job(tap_url, "SELECT TOP 1 objectId FROM dr.Object", PHASE="RUN", RUNID="list-b")
    assert wait_until_final(completed).phase == "COMPLETED"
    aborted = create_job(tap_url, "SELECT TOP 1 objectId FROM dr.Object", RUNID="list-c")
    assert post(f"{aborted}/phase", PHASE="ABORT").status_code == 303
    assert job_of(aborted).phase == "ABORTED"
    ids = {name: job_id_of(url) for name, url in (("p", pending), ("c", completed), ("a", aborted))}

    def listed(query: str = "") -> list:
        response = httpx.get(f"{tap_url}/async{query}", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
        return list(parse_job_list(io.BytesIO(response.content)))

    everything = {ref.jobid: ref for ref in listed()}
    assert set(ids.values()) <= set(everything)
    assert everything[ids["p"]].phase == "PENDING" and everything[ids["p"]].runid == "list-a"
    assert everything[ids["c"]].ownerid == "anonymous"
    only_pending = {ref.jobid for ref in listed("?PHASE=PENDING")}
    assert ids["p"] in only_pending and ids["c"] not in only_pending
    either = {ref.jobid for ref in listed("?phase=PENDING&PHASE=completed")}
    assert {ids["p"], ids["c"]} <= either and ids["a"] not in either
    after = created_after.isot + "Z"
    later = {ref.jobid for ref in listed(f"?AFTER={after}")}
    assert ids["p"] not in later and {ids["c"], ids["a"]} <= later
    newest = listed("?LAST=2")
    assert [ref.jobid for ref in newest] == [ids["a"], ids["c"]]
    assert listed("?PHASE=ARCHIVED") == []


# ---------------------------------------------------------------- running


def test_wait_returns_when_the_phase_changes(tap_url: str) -> None:
    query = "SELECT COUNT(*) AS n FROM dr.CcdVisit AS a JOIN dr.CcdVisit AS b ON a.ccdVisitId <> b.ccdVisitId"
    job_url = create_job(tap_url, query)
    # A client blocked on the PENDING job wakes up when another one starts it.
    blocked: list[JobFile] = []
    waiter = threading.Thread(target=lambda: blocked.append(job_of(job_url, WAIT="-1")))
    waiter.start()
    assert post(f"{job_url}/phase", PHASE="RUN").status_code == 303
    waiter.join(timeout=90)
    assert blocked and blocked[0].phase != "PENDING"

    seen = [blocked[0].phase]
    while seen[-1] not in FINAL_PHASES and len(seen) < 6:
        seen.append(job_of(job_url, WAIT="60").phase)
    assert seen[-1] == "COMPLETED"
    # WAIT came back because the phase changed, not because the time was up.
    assert all(a != b for a, b in itertools.pairwise(seen)), seen
    # A finished job, or one not in the PHASE asked for, does not block.
    assert job_of(job_url, WAIT="60").phase == "COMPLETED"
    pending = create_job(tap_url, "SELECT TOP 1 objectId FROM dr.Object")
    assert job_of(pending, WAIT="60", PHASE="EXECUTING").phase == "PENDING"
    error_of(httpx.get(pending, params={"WAIT": "soon"}, timeout=30), 400)


def test_abort_a_long_running_job(tap_url: str, tap_cluster: TapCluster) -> None:
    query, marker = heavy_query()
    job_url = create_job(tap_url, query, PHASE="RUN")
    assert wait_until_executing(job_url).phase == "EXECUTING"
    assert_statements_run(tap_cluster, marker)
    response = post(f"{job_url}/phase", PHASE="ABORT")
    assert response.status_code == 303 and response.headers["location"] == job_url
    assert job_of(job_url).phase == "ABORTED"
    assert_statements_end(tap_cluster, marker)
    assert log_row(tap_cluster.cluster.coordinator_dsn, query)["outcome"] == "aborted"
    job = job_of(job_url, WAIT="5")
    assert job.phase == "ABORTED" and len(job.results) == 0 and job.endtime is not None
    error_of(httpx.get(f"{job_url}/results/result", timeout=30), 404)
    assert not list((tap_cluster.results_dir / job_id_of(job_url)).glob("result*"))
    # Running it again is refused; aborting again changes nothing.
    error_of(httpx.post(f"{job_url}/phase", data={"PHASE": "RUN"}, timeout=30), 400)
    assert post(f"{job_url}/phase", PHASE="ABORT").status_code == 303
    assert job_of(job_url).phase == "ABORTED"


def test_execution_duration_exceeded_is_an_error(tap_url: str, tap_cluster: TapCluster) -> None:
    query, marker = heavy_query()
    job_url = create_job(tap_url, query)
    assert post(f"{job_url}/executionduration", EXECUTIONDURATION="1").status_code == 303
    assert httpx.get(f"{job_url}/executionduration", timeout=30).text == "1"
    assert post(f"{job_url}/phase", PHASE="RUN").status_code == 303
    error_of(httpx.post(f"{job_url}/executionduration", data={"EXECUTIONDURATION": "5"}, timeout=30), 400)
    job = wait_until_final(job_url)
    assert job.phase == "ERROR"
    assert job.errorsummary.type_ == "fatal"
    assert "execution duration" in job.errorsummary.message.content
    assert_statements_end(tap_cluster, marker)
    error = httpx.get(f"{job_url}/error", timeout=30)
    assert error.status_code == 200
    assert "execution duration" in _votable_error(error)[0]


def test_execution_duration_is_capped(start_service: StartService) -> None:
    with start_service(execution_duration_s=100, execution_duration_max_s=200) as url:
        job_url = create_job(url, "SELECT TOP 1 objectId FROM dr.Object")
        assert job_of(job_url).executionduration.sec == 100
        post(f"{job_url}/executionduration", EXECUTIONDURATION="100000")
        assert httpx.get(f"{job_url}/executionduration", timeout=30).text == "200"
        post(f"{job_url}/executionduration", EXECUTIONDURATION="0")
        assert httpx.get(f"{job_url}/executionduration", timeout=30).text == "200"
        error_of(httpx.post(f"{job_url}/executionduration", data={"EXECUTIONDURATION": "x"}, timeout=30), 400)


def test_adql_error_makes_the_job_fail_with_its_position(tap_url: str) -> None:
    job_url = create_job(tap_url, "SELECT objectId\nFROM dr.Object WHERE", PHASE="RUN")
    job = wait_until_final(job_url)
    assert job.phase == "ERROR"
    assert job.errorsummary.type_ == "fatal" and job.errorsummary.has_detail
    message = job.errorsummary.message.content
    assert "line 2" in message and "column" in message
    response = httpx.get(f"{job_url}/error", timeout=30)
    assert_no_leak(response)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    text, infos = _votable_error(response)
    assert "line 2" in text
    assert infos.get("line") == "2"
    error_of(httpx.get(f"{job_url}/results/result", timeout=30), 404)


def test_post_parameters_while_pending(tap_url: str) -> None:
    job_url = create_job(tap_url, "SELECT TOP 5 objectId FROM dr.Object ORDER BY objectId", FORMAT="csv")
    new_query = "SELECT TOP 9 objectId FROM dr.Object ORDER BY objectId"
    assert post(f"{job_url}/parameters", QUERY=new_query, maxrec="4", RUNID="changed").status_code == 303
    job = job_of(job_url)
    parameters = {p.id_: p.content for p in job.parameters}
    assert parameters["query"] == new_query and parameters["maxrec"] == "4" and parameters["format"] == "csv"
    assert job.runid == "changed"
    post(f"{job_url}/phase", PHASE="RUN")
    assert wait_until_final(job_url).phase == "COMPLETED"
    assert len(csv_rows(httpx.get(f"{job_url}/results/result", timeout=30))) == 4
    error_of(httpx.post(f"{job_url}/parameters", data={"MAXREC": "5"}, timeout=30), 400)


def test_async_upload_is_kept_until_the_job_runs(tap_url: str, tap_cluster: TapCluster) -> None:
    table = b"id,ra,dec\n1,60.0,-30.0\n2,60.1,-29.9\n3,60.2,-29.8\n"
    response = httpx.post(
        f"{tap_url}/async",
        data=query_params("SELECT COUNT(*) AS n FROM TAP_UPLOAD.mine", UPLOAD="mine,param:part1", FORMAT="csv"),
        files={"part1": ("mine.csv", table, "text/csv")},
        timeout=30,
    )
    assert response.status_code == 303, response.text
    job_url = response.headers["location"]
    stored = tap_cluster.results_dir / job_id_of(job_url) / "uploads" / "mine"
    assert stored.read_bytes() == table
    job = job_of(job_url)
    by_reference = [p for p in job.parameters if p.byreference]
    assert [(p.id_, p.content) for p in by_reference] == [("part1", f"{job_url}/uploads/mine")]
    assert httpx.get(f"{job_url}/uploads/mine", timeout=30).content == table
    post(f"{job_url}/phase", PHASE="RUN")
    assert wait_until_final(job_url).phase == "COMPLETED"
    assert csv_rows(httpx.get(f"{job_url}/results/result", timeout=30)) == ["3"]

    # An upload that cannot be read fails the job when it runs, with a summary.
    broken = httpx.post(
        f"{tap_url}/async",
        data=query_params("SELECT * FROM TAP_UPLOAD.bad", UPLOAD="bad,param:p", PHASE="RUN"),
        files={"p": ("bad.xml", b"<?xml version='1.0'?><VOTABLE><RESOURCE>", "text/xml")},
        timeout=30,
    )
    assert broken.status_code == 303
    failed = wait_until_final(broken.headers["location"])
    assert failed.phase == "ERROR" and "upload bad" in failed.errorsummary.message.content
    # A part the request does not contain is a 400, with no job.
    error_of(httpx.post(f"{tap_url}/async", data=query_params("SELECT 1", UPLOAD="t,param:missing"), timeout=30), 400)


def test_upload_over_the_byte_limit_is_refused(start_service: StartService, tap_cluster: TapCluster) -> None:
    with start_service(upload_max_bytes=20) as url:
        response = httpx.post(
            f"{url}/async",
            data=query_params("SELECT * FROM TAP_UPLOAD.t", UPLOAD="t,param:t"),
            files={"t": ("t.csv", b"id\n" + b"1\n" * 50, "text/csv")},
            timeout=30,
        )
        error_of(response, 413)


def test_delete_by_post_and_by_delete(tap_url: str, tap_cluster: TapCluster) -> None:
    first = create_job(tap_url, "SELECT TOP 2 objectId FROM dr.Object", PHASE="RUN")
    assert wait_until_final(first).phase == "COMPLETED"
    job_dir = tap_cluster.results_dir / job_id_of(first)
    assert job_dir.is_dir()
    response = post(first, action="delete")
    assert response.status_code == 303 and response.headers["location"] == f"{tap_url}/async"
    error_of(httpx.get(first, timeout=30), 404)
    assert not job_dir.exists()

    query, marker = heavy_query()
    second = create_job(tap_url, query, PHASE="RUN")
    assert wait_until_executing(second).phase == "EXECUTING"
    assert_statements_run(tap_cluster, marker)
    response = httpx.delete(second, timeout=30)
    assert response.status_code == 303
    error_of(httpx.get(second, timeout=30), 404)
    assert_statements_end(tap_cluster, marker)
    assert not (tap_cluster.results_dir / job_id_of(second)).exists()
    assert job_row(tap_cluster.cluster.coordinator_dsn, job_id_of(second)) is None
    error_of(httpx.delete(second, timeout=30), 404)
    error_of(httpx.post(first, data={"ACTION": "SHRED"}, timeout=30), 400)


# ---------------------------------------------------------------- owners, destruction, restarts


def test_jobs_are_visible_only_to_their_owner(start_service: StartService, tap_cluster: TapCluster) -> None:
    with psycopg.connect(tap_cluster.cluster.coordinator_dsn, autocommit=True) as conn:
        alice = {"Authorization": f"Bearer {create_token(conn, 'alice').secret}"}
        bob = {"Authorization": f"Bearer {create_token(conn, 'bob').secret}"}
    with start_service(auth="token") as url:
        error_of(httpx.post(f"{url}/async", data=query_params("SELECT 1"), timeout=30), 401)
        job_url = create_job(url, "SELECT TOP 1 objectId FROM dr.Object", headers=alice, PHASE="RUN")
        assert wait_until_final(job_url, headers=alice).ownerid == "alice"
        for path in ("", "/phase", "/results", "/results/result", "/parameters", "/owner", "/error"):
            error_of(httpx.get(f"{job_url}{path}", headers=bob, timeout=30), 404)
        error_of(httpx.delete(job_url, headers=bob, timeout=30), 404)
        error_of(httpx.post(f"{job_url}/phase", data={"PHASE": "ABORT"}, headers=bob, timeout=30), 404)
        bobs = parse_job_list(io.BytesIO(httpx.get(f"{url}/async", headers=bob, timeout=30).content))
        assert job_id_of(job_url) not in {ref.jobid for ref in bobs}
        alices = parse_job_list(io.BytesIO(httpx.get(f"{url}/async", headers=alice, timeout=30).content))
        assert job_id_of(job_url) in {ref.jobid for ref in alices}
        assert httpx.get(f"{job_url}/results/result", headers=alice, timeout=30).status_code == 200


def test_sweeper_deletes_jobs_past_their_destruction(
    start_service: StartService, tap_cluster: TapCluster, short_sweeps: None
) -> None:
    with start_service(destruction_days=2) as url:
        job_url = create_job(url, "SELECT TOP 2 objectId FROM dr.Object", PHASE="RUN")
        assert wait_until_final(job_url).phase == "COMPLETED"
        job_dir = tap_cluster.results_dir / job_id_of(job_url)
        assert job_dir.is_dir()
        created = datetime.fromisoformat(job_of(job_url).creationtime.isot).replace(tzinfo=UTC)

        post(f"{job_url}/destruction", DESTRUCTION="2100-01-01T00:00:00Z")
        capped = datetime.fromisoformat(httpx.get(f"{job_url}/destruction", timeout=30).text)
        assert capped <= created + timedelta(days=2, seconds=1)

        past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert post(f"{job_url}/destruction", DESTRUCTION=past).status_code == 303
        _wait_for(lambda: httpx.get(job_url, timeout=30).status_code == 404, "the sweeper to delete the job")
        assert not job_dir.exists()
        assert job_row(tap_cluster.cluster.coordinator_dsn, job_id_of(job_url)) is None


def test_jobs_left_running_by_a_stopped_service_become_errors(
    start_service: StartService, tap_cluster: TapCluster
) -> None:
    dsn = tap_cluster.cluster.coordinator_dsn
    ids = {phase: f"left-{phase.lower()}-{uuid.uuid4().hex[:8]}" for phase in ("EXECUTING", "QUEUED", "PENDING")}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for phase, job_id in ids.items():
            conn.execute(
                "INSERT INTO dms.uws_job (job_id, owner, phase, execution_duration, destruction_time, parameters) "
                "VALUES (%s, 'anonymous', %s, 60, now() + interval '1 day', %s)",
                [job_id, phase, '{"lang": ["ADQL"], "query": ["SELECT 1"]}'],
            )
    with start_service() as url:
        for phase in ("EXECUTING", "QUEUED"):
            job = job_of(f"{url}/async/{ids[phase]}")
            assert job.phase == "ERROR"
            assert job.errorsummary.type_ == "transient"
            assert "restarted" in job.errorsummary.message.content
            assert "restarted" in _votable_error(httpx.get(f"{url}/async/{ids[phase]}/error", timeout=30))[0]
        assert job_of(f"{url}/async/{ids['PENDING']}").phase == "PENDING"


def test_another_service_leaves_running_jobs_alone_and_can_abort_them(
    tap_url: str, start_service: StartService, tap_cluster: TapCluster
) -> None:
    query, marker = heavy_query()
    job_url = create_job(tap_url, query, PHASE="RUN")
    assert wait_until_executing(job_url).phase == "EXECUTING"
    assert_statements_run(tap_cluster, marker)
    other_url = job_url.replace(tap_url, "{other}")
    with start_service() as other:
        # Its start-up sweep found the job's lock held by the first service, so the job runs on.
        assert job_of(other_url.format(other=other)).phase == "EXECUTING"
        assert post(f"{other_url.format(other=other)}/phase", PHASE="ABORT").status_code == 303
        # The first service notices and cancels the query it runs.
        assert_statements_end(tap_cluster, marker)
    job = job_of(job_url)
    assert job.phase == "ABORTED" and len(job.results) == 0


def test_stopping_the_service_ends_running_jobs(start_service: StartService, tap_cluster: TapCluster) -> None:
    dsn = tap_cluster.cluster.coordinator_dsn
    query, marker = heavy_query()
    with start_service(running_jobs_limit=1) as url:
        running = create_job(url, query, PHASE="RUN")
        queued = create_job(url, "SELECT TOP 1 objectId FROM dr.Object", PHASE="RUN")
        assert wait_until_executing(running).phase == "EXECUTING"
        assert_statements_run(tap_cluster, marker)
        assert job_of(queued).phase == "QUEUED"  # one job at a time
    for job_url in (running, queued):
        row = job_row(dsn, job_id_of(job_url))
        assert row is not None and row["phase"] == "ERROR" and row["error_type"] == "transient", row
        assert "stopped" in str(row["error_summary"])
    assert_statements_end(tap_cluster, marker)


# ---------------------------------------------------------------- small helpers


def _votable_error(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The QUERY_STATUS message and other INFOs of an error document served with status 200."""
    assert response.status_code == 200, response.text
    document = votable.parse(io.BytesIO(response.content))
    infos = [info for resource in document.resources for info in resource.infos]
    status = [info for info in infos if info.name == "QUERY_STATUS"]
    assert [info.value for info in status] == ["ERROR"]
    return str(status[0].content), {str(i.name): str(i.value) for i in infos if i.name != "QUERY_STATUS"}


def _wait_for(condition: Callable[[], bool], what: str, attempts: int = 150) -> None:
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")
