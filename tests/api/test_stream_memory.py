"""Acceptance: streaming a 2M-row result as CSV and as VOTable BINARY2 grows the server's RSS by less than 200 MB.

The service runs as its own process (``dms-db serve``, :mod:`tests.api.serve_subprocess`)
on a 2-worker cluster holding the 2 000 000 narrow DiaSources of
``tests.query.test_streaming_memory`` (loaded in a spawned child, as there).
Each format is first warmed up with a small query; then the server's peak
RSS is reset (``/proc/<pid>/clear_refs``, VmHWM) and sampled from
``/proc/<pid>/status`` every few milliseconds while this process downloads the
whole result with httpx, decoding it on the fly without keeping it: CSV lines
are counted and BINARY2 rows decoded from the base64 stream, and the sum of
the ``diaSourceId`` keys must be that of 1..2M, so a short, repeated or
truncated answer fails as surely as a memory leak.

Why 200 MB can fail: a server that held the result before sending it would
keep 2M rows as Python tuples of (int, float, float), 140 bytes a row, i.e.
267 MiB (the test checks that this estimate exceeds the bound), on top of the
encoded bytes it then sends; a service patched to collect every batch before
encoding fails here.  A server that held only the encoded response (88 MiB of
CSV, 64 MiB of BINARY2) would stay under 200 MB, so the growth must also stay
under half the bytes sent.  Nothing here measures time.
"""

from __future__ import annotations

import base64
import binascii
import multiprocessing
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from dms_db.config import ServiceConfig
from tests.api.serve_subprocess import ServiceProcess, service_process
from tests.harness import TestServer, build_database_cluster, drop_database_cluster, make_scratch_dir
from tests.query.test_streaming_memory import N_SOURCES, load_narrow_survey

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MIB = 1 << 20
BOUND_BYTES = 200 * MIB
RSS_INTERVAL_S = 0.005
QUERY = "SELECT diaSourceId, ra, dec FROM apdb.DiaSource"
EXPECTED_ID_SUM = N_SOURCES * (N_SOURCES + 1) // 2  # narrow_survey numbers DiaSources 1..N_SOURCES


class CsvRows:
    """Counts CSV rows and sums their first column, chunk by chunk, keeping only a partial line."""

    def __init__(self) -> None:
        self.rows = 0
        self.id_sum = 0
        self._rest = b""
        self._header: bytes | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._rest + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._rest = data
            return
        lines = data[:end].split(b"\n")
        self._rest = data[end + 1 :]
        if self._header is None:
            self._header = lines.pop(0).rstrip(b"\r")
            assert self._header == b"diaSourceId,ra,dec", self._header
        self.rows += len(lines)
        self.id_sum += sum(int(line.split(b",", 1)[0]) for line in lines)

    def finish(self) -> None:
        assert self._rest.strip() == b"", f"the CSV ends with a partial line: {self._rest[:100]!r}"


_SIZES = {"long": ">i8", "double": ">f8", "int": ">i4", "float": ">f4", "short": ">i2", "boolean": "S1"}


@dataclass
class Binary2Rows:
    """Decodes a VOTable BINARY2 stream of fixed-size columns as it arrives; counts rows and sums the first column."""

    rows: int = 0
    id_sum: int = 0
    status_tail: bytes = b""
    _head: bytes = b""
    _text: bytes = b""
    _binary: bytes = b""
    _row: np.dtype | None = None
    _done: bool = False
    _tail: list[bytes] = field(default_factory=list)

    def feed(self, chunk: bytes) -> None:
        if self._done:
            self._tail.append(chunk)
            return
        if self._row is None:
            self._head += chunk
            start = self._head.find(b'<STREAM encoding="base64">')
            if start < 0:
                return
            self._row = self._row_type(self._head[:start].decode())
            chunk = self._head[start + len(b'<STREAM encoding="base64">') :]
            self._head = b""
        end = chunk.find(b"</STREAM>")
        if end >= 0:
            self._tail.append(chunk[end:])
            chunk = chunk[:end]
            self._done = True
        self._decode(chunk, final=self._done)

    def _row_type(self, head: str) -> np.dtype:
        datatypes = re.findall(r'<FIELD [^>]*datatype="(\w+)"', head)
        assert len(datatypes) == 3 and "arraysize" not in head, head
        masks = (len(datatypes) + 7) // 8
        return np.dtype([("nulls", "u1", (masks,)), *((f"c{i}", _SIZES[t]) for i, t in enumerate(datatypes))])

    def _decode(self, text: bytes, *, final: bool) -> None:
        assert self._row is not None
        self._text += text.replace(b"\n", b"").replace(b"\r", b"").replace(b" ", b"")
        usable = len(self._text) if final else len(self._text) // 4 * 4
        try:
            self._binary += base64.b64decode(self._text[:usable], validate=True)
        except binascii.Error as exc:
            raise AssertionError(f"the BINARY2 stream is not base64: {exc}") from None
        self._text = self._text[usable:]
        whole = len(self._binary) // self._row.itemsize
        if whole:
            decoded = np.frombuffer(self._binary[: whole * self._row.itemsize], dtype=self._row)
            self.rows += whole
            self.id_sum += int(decoded["c0"].astype(np.int64).sum())
            self._binary = self._binary[whole * self._row.itemsize :]

    def finish(self) -> None:
        assert self._done, "the response ended inside the STREAM"
        assert not self._binary and not self._text, "the stream ends with a partial row"
        self.status_tail = b"".join(self._tail)


class PeakRss:
    """Samples a process's VmRSS in a thread and keeps the peak."""

    def __init__(self, process: ServiceProcess) -> None:
        self._process = process
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._sample, name="server-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.rss_bytes())
            self._stop.wait(RSS_INTERVAL_S)

    def __enter__(self) -> PeakRss:
        self.peak = self._process.rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.rss_bytes())


@pytest.fixture(scope="module")
def big_service(pg_server: TestServer) -> Iterator[ServiceProcess]:
    """``dms-db serve`` in its own process on a 2-worker cluster holding N_SOURCES DiaSources."""
    cluster = build_database_cluster(pg_server, 2)
    scratch = make_scratch_dir("dms-db-tap-memory-")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
            loaded = child.submit(load_narrow_survey, cluster.topology, cluster.config).result()
        for table, (rows, given) in loaded.items():
            assert rows == given, f"apdb.{table}: loaded {rows} of {given} rows"
        settings = ServiceConfig(results_dir=scratch, maxrec_limit=10 * N_SOURCES, sync_timeout_s=1800)
        config = cluster.config.model_copy(update={"service": settings})
        with service_process(config, scratch) as process:
            yield process
    finally:
        drop_database_cluster(pg_server, cluster)
        shutil.rmtree(scratch, ignore_errors=True)


def download(url: str, response_format: str, query: str, maxrec: int) -> tuple[CsvRows | Binary2Rows, int]:
    """Stream a result, decoding it without keeping it; the decoder and the bytes received."""
    decoder: CsvRows | Binary2Rows = CsvRows() if response_format == "csv" else Binary2Rows()
    received = 0
    params = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "MAXREC": str(maxrec), "FORMAT": response_format}
    with (
        httpx.Client(timeout=httpx.Timeout(600.0)) as client,
        client.stream("POST", f"{url}/sync", data=params) as response,
    ):
        assert response.status_code == 200, response.read()[:2000]
        for chunk in response.iter_raw(1 << 16):
            received += len(chunk)
            decoder.feed(chunk)
    decoder.finish()
    return decoder, received


def buffered_row_bytes() -> int:
    """Memory one result row takes as a Python tuple (what a server holding the result would keep)."""
    row = (1_234_567, 45.123456789, -30.987654321)
    return sys.getsizeof(row) + sum(sys.getsizeof(value) for value in row)


@pytest.mark.parametrize("response_format", ["csv", "votable/b2"])
def test_two_million_rows_stream_in_bounded_server_memory(big_service: ServiceProcess, response_format: str) -> None:
    buffered = N_SOURCES * buffered_row_bytes()
    assert buffered > BOUND_BYTES, "the bound would not catch a server that holds the result"

    warm, _ = download(big_service.url, response_format, f"SELECT TOP 5000 {QUERY.removeprefix('SELECT ')}", 5000)
    assert warm.rows == 5000
    baseline = big_service.rss_bytes()
    hwm_reset = big_service.reset_peak()
    with PeakRss(big_service) as sampler:
        seen, received = download(big_service.url, response_format, QUERY, N_SOURCES + 1000)
    peak = max(sampler.peak, big_service.peak_rss_bytes() if hwm_reset else 0)
    growth = peak - baseline

    assert seen.rows == N_SOURCES, f"{response_format}: {seen.rows} rows instead of {N_SOURCES}"
    assert seen.id_sum == EXPECTED_ID_SUM, f"{response_format}: rows lost or repeated (diaSourceId checksum)"
    if isinstance(seen, Binary2Rows):
        assert b'name="QUERY_STATUS" value="OVERFLOW"' not in seen.status_tail, seen.status_tail
    print(
        f"\n{response_format}: {seen.rows:,} rows, {received / MIB:.0f} MiB received; server RSS baseline "
        f"{baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB (sampled {sampler.peak / MIB:.0f}, VmHWM "
        f"{'reset' if hwm_reset else 'not resettable'}), growth {growth / MIB:.1f} MiB; bound {BOUND_BYTES / MIB:.0f} "
        f"MiB; the rows held as tuples would take {buffered / MIB:.0f} MiB"
    )
    assert growth < BOUND_BYTES, (
        f"{response_format}: the server's RSS grew by {growth / MIB:.1f} MiB (baseline {baseline / MIB:.0f} MiB) while "
        f"streaming {N_SOURCES:,} rows ({received / MIB:.0f} MiB); the limit is {BOUND_BYTES / MIB:.0f} MiB\n"
        f"{big_service.log_tail()}"
    )
    # Stricter than the acceptance bound: a server that encoded the whole response before sending it would hold
    # at least the bytes sent (88 MiB of CSV, 64 MiB of BINARY2), which stays under 200 MB but not under this.
    assert growth < received / 2, (
        f"{response_format}: the server's RSS grew by {growth / MIB:.1f} MiB, more than half of the "
        f"{received / MIB:.0f} MiB it sent: is the response buffered?"
    )
