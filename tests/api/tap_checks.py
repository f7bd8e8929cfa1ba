"""Checks shared by the end-to-end tests of the TAP service: error documents, leaks, the query log.

Every TAP error must be a VOTable whose ``QUERY_STATUS`` INFO says ``ERROR``
and carries the message (DALI 1.1, section 4.4); :func:`error_of` parses one
with astropy, as a client would, and returns what it says.  No response may
show a stack trace or how to reach a database (:func:`assert_no_leak`).
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass

import httpx
import psycopg
from astropy.io import votable

__all__ = ["TapError", "assert_no_leak", "error_of", "log_row", "query_params"]

VOTABLE_MEDIA_TYPE = "application/x-votable+xml"


@dataclass(frozen=True)
class TapError:
    """What an error document says: the HTTP status, the QUERY_STATUS message and the other INFOs."""

    status: int
    message: str
    infos: dict[str, str]


def query_params(query: str, **extra: str) -> dict[str, str]:
    """The parameters of a TAP sync query, as a client sends them."""
    return {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, **extra}


def assert_no_leak(response: httpx.Response, secrets: tuple[str, ...] = ()) -> None:
    """The body shows no Python traceback, no connection string and none of ``secrets`` (e.g. DSNs)."""
    text = response.content.decode("utf-8", errors="replace")
    for forbidden in ("Traceback", "postgresql://", "dbname=", "passfile=", "password=", *secrets):
        assert forbidden not in text, f"the response ({response.status_code}) contains {forbidden!r}:\n{text[:2000]}"


def error_of(response: httpx.Response, status: int | None = None) -> TapError:
    """Parse a TAP error response with astropy; check its status, media type and QUERY_STATUS=ERROR."""
    assert_no_leak(response)
    if status is not None:
        assert response.status_code == status, (
            f"HTTP {response.status_code} instead of {status}: {response.text[:2000]}"
        )
    assert response.status_code >= 400, f"expected an error, got {response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith(VOTABLE_MEDIA_TYPE), response.headers["content-type"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a document astropy has to warn about is not a valid VOTable
        document = votable.parse(io.BytesIO(response.content))
    infos = [info for resource in document.resources for info in resource.infos]
    status_infos = [info for info in infos if info.name == "QUERY_STATUS"]
    assert [info.value for info in status_infos] == ["ERROR"], response.text
    message = str(status_infos[0].content or "")
    assert message.strip(), f"the error document has no message: {response.text}"
    others = {str(info.name): str(info.value) for info in infos if info.name != "QUERY_STATUS"}
    return TapError(response.status_code, message, others)


def log_row(coordinator_dsn: str, query_text: str, timeout_s: float = 10.0) -> dict[str, object]:
    """The finished ``dms.query_log`` row of a query (polled: the log is completed after the last byte)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(coordinator_dsn) as conn:
            cursor = conn.execute(
                "SELECT owner, outcome, row_count, error FROM dms.query_log WHERE query_text = %s "
                "ORDER BY query_id DESC LIMIT 1",
                [query_text],
            )
            row = cursor.fetchone()
        if row is not None and row[1] != "running":
            return {"owner": row[0], "outcome": row[1], "rows": row[2], "error": row[3]}
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished query_log row within {timeout_s} s (last seen: {row}) for {query_text}")
        time.sleep(0.1)
