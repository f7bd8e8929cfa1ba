"""The life of async jobs in one service process: create, queue, execute, abort, delete, wait for a change.

Jobs execute as asyncio tasks in the service's event loop, at most
``running_jobs_limit`` at once; the others wait, QUEUED, on a FIFO semaphore.
A job writes its result to a temporary file renamed when complete, so a
result file that exists is whole.

Every phase change is a conditional update (:meth:`JobStore.change`), so the
final phase is consistent whoever acts first: an ABORT that wins leaves the
runner's COMPLETED update without effect (and the runner deletes its file);
one that loses finds the job finished and changes nothing.  A job task can be
cancelled only while it executes; once it stores its outcome it runs to its
end, so its files and locks are always cleaned up.

Clients blocking on a job (UWS ``WAIT``) sleep on an event per job that this
process sets on every change it makes; they also re-read the job every second,
for changes made by another process.  A watch loop cancels local tasks whose
job another process aborted or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import psycopg
from starlette.datastructures import UploadFile

from api.tap.errors import error_document
from api.tap.formats import resolve_format, votable_error_document
from api.tap.params import (
    QueryRequest,
    TapParameterError,
    TapParameters,
    UploadReference,
    query_request,
    upload_references,
)
from api.tap.query_stream import open_query
from api.tap.service import TapService
from api.tap.uploads import read_upload, request_part, uploaded_table
from api.tap.uws.store import ACTIVE_PHASES, RUNNING_PHASES, Job, JobFiles, JobLocks, JobStore, utc_now
from api.tap.uws.sweeper import SWEEP_INTERVAL_S, sweep_forever, sweep_jobs
from dms_db.errors import ClusterError, NotFoundError, QueryTimeoutError, UserError
from dms_db.metadata import UWS_PHASES
from sharding.coordinator.uploads import UploadedTable

__all__ = ["WAIT_LIMIT_S", "JobFailure", "JobManager", "JobStateError"]

log = logging.getLogger("dms_db.tap.uws")

WAIT_LIMIT_S = 60.0
"""Longest a client's WAIT blocks (WAIT=-1 means this long)."""
POLL_S = 1.0
"""How often waiting clients and the watch loop re-read jobs, for changes made by other processes."""
_NOT_STORED = ("phase", "runid")
"""Parameters that act on the job rather than describe the query (RUNID has its own column)."""
_STOPPED_SUMMARY = "the service stopped while the job was queued or running; resubmit it"


class JobStateError(UserError):
    """The request does not fit the job's phase (e.g. changing the parameters of a running job)."""

    error_type = "JobStateError"


@dataclass(frozen=True)
class JobFailure:
    """Why a job ended in ERROR: what the job document says, and the VOTable error document."""

    error_type: Literal["fatal", "transient"]
    summary: str
    document: bytes


class JobManager:
    """Async jobs of one service process.

    Parameters
    ----------
    service
        The running service (pool, engine, limits, results directory).
    sweep_interval_s
        Seconds between sweeps of expired and abandoned jobs; tests shorten it.
    """

    def __init__(self, service: TapService, *, sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        self.service = service
        self.store = JobStore(service.pool)
        self.files = JobFiles(Path(service.config.results_dir))
        self.sweep_interval_s = sweep_interval_s
        self._locks = JobLocks(service.topology.coordinator.dsn)
        self._slots = asyncio.Semaphore(service.config.service.running_jobs_limit)
        self._queueing = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancellable: set[str] = set()
        self._changes: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- start and stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over: fail jobs an earlier process left running, then sweep and watch in the background."""
        self.files.root.mkdir(parents=True, exist_ok=True)
        await self._locks.open()
        await sweep_jobs(self.store, self.forget)
        self._background = [
            asyncio.create_task(sweep_forever(self.store, self.forget, self.sweep_interval_s), name="uws-sweeper"),
            asyncio.create_task(self._watch(), name="uws-watch"),
        ]

    async def stop(self) -> None:
        """Stop sweeping, end running and queued jobs (they become ERROR), and release the locks."""
        self._stopping = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for job_id in list(self._cancellable):
            self._tasks[job_id].cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=30)
        for event in self._changes.values():
            event.set()
        await self._locks.close()

    # -- client requests --------------------------------------------------------------------------

    async def get(self, job_id: str, owner: str) -> Job:
        """The owner's job; another owner's job is as unknown as a job that never existed."""
        job = await self.store.get(job_id, owner)
        if job is None:
            raise NotFoundError(f"there is no job {job_id}", hint="the jobs you own are listed at /tap/async")
        return job

    async def list_jobs(
        self, owner: str, *, phases: Sequence[str] = (), after: datetime | None = None, last: int | None = None
    ) -> list[Job]:
        """The owner's jobs, newest first (UWS 1.1 filters PHASE, AFTER, LAST)."""
        return await self.store.list_jobs(owner, phases=phases, after=after, last=last)

    async def create(self, owner: str, parameters: TapParameters) -> Job:
        """Keep the uploaded tables, store a PENDING job, and queue it on PHASE=RUN.

        Only what the job cannot be stored without is checked here: PHASE, and
        the UPLOAD references, whose tables are read (or fetched) now and kept
        with the job.  The query itself (LANG, QUERY, FORMAT, MAXREC) is checked
        when the job runs, and a bad one ends the job in ERROR with its error
        document, as UWS clients expect of a job they could create.
        """
        limits = self.service.config.service
        run = _phase_is_run(parameters)
        references = upload_references(parameters.all("upload"))
        job_id = secrets.token_urlsafe(12)
        try:
            await self._keep_uploads(job_id, references, parameters.files)
            job = await self.store.insert(
                job_id=job_id,
                owner=owner,
                run_id=parameters.get("runid"),
                execution_duration=limits.execution_duration_s,
                destruction_time=utc_now() + timedelta(days=limits.destruction_days),
                parameters=_stored(parameters.values),
            )
        except BaseException:
            await asyncio.to_thread(self.files.remove, job_id)
            raise
        return await self.run(job) if run else job

    async def set_parameters(self, job_id: str, owner: str, parameters: TapParameters) -> Job:
        """Replace the values of the parameters given (UWS 1.1 section 2.2.3.7); only while PENDING.

        As at creation, the query is checked when the job runs.
        """
        job = await self.get(job_id, owner)
        if job.phase != "PENDING":
            raise JobStateError(
                f"job {job_id} is {job.phase}; parameters can change only while it is PENDING",
                hint="submit a new job with the parameters you want",
            )
        merged = {**job.parameters, **_stored(parameters.values)}
        # The tables of an UPLOAD given here replace the kept ones; without UPLOAD the kept tables stay.
        await self._keep_uploads(job_id, upload_references(parameters.all("upload")), parameters.files)
        run_id = parameters.get("runid") if "runid" in parameters.values else job.run_id
        changed = await self.store.change(job_id, phases=["PENDING"], owner=owner, parameters=merged, run_id=run_id)
        if changed is None:
            raise JobStateError(f"job {job_id} left the PENDING phase while its parameters were changed")
        self._notify(job_id)
        return await self.run(changed) if _phase_is_run(parameters) else changed

    async def set_execution_duration(self, job_id: str, owner: str, seconds: int) -> Job:
        """Change the run-time limit of a PENDING job; 0 (unlimited) and larger values become the maximum."""
        limit = self.service.config.service.execution_duration_max_s
        seconds = limit if seconds <= 0 else min(seconds, limit)
        job = await self.store.change(job_id, phases=["PENDING"], owner=owner, execution_duration=seconds)
        if job is None:
            current = await self.get(job_id, owner)
            raise JobStateError(
                f"job {job_id} is {current.phase}; its execution duration can change only while it is PENDING"
            )
        self._notify(job_id)
        return job

    async def set_destruction(self, job_id: str, owner: str, when: datetime) -> Job:
        """Move the destruction time, at most to the service's retention after the job's creation."""
        job = await self.get(job_id, owner)
        latest = job.creation_time + timedelta(days=self.service.config.service.destruction_days)
        changed = await self.store.change(job_id, phases=UWS_PHASES, owner=owner, destruction_time=min(when, latest))
        if changed is None:
            raise NotFoundError(f"there is no job {job_id}", hint="the jobs you own are listed at /tap/async")
        return changed

    async def run(self, job: Job) -> Job:
        """Queue a PENDING job (PHASE=RUN); a job already queued or executing is left as it is."""
        if job.phase in RUNNING_PHASES:
            return job
        if self._stopping:
            raise ClusterError("the service is shutting down", hint="send PHASE=RUN again in a moment")
        async with self._queueing:
            if job.job_id in self._tasks:
                return await self.get(job.job_id, job.owner)
            await self._locks.acquire(job.job_id)
            queued = await self.store.change(job.job_id, phases=["PENDING"], phase="QUEUED")
            if queued is None:
                await self._locks.release(job.job_id)
            else:
                self._cancellable.add(job.job_id)
                self._tasks[job.job_id] = asyncio.create_task(self._run(queued), name=f"uws-job-{job.job_id}")
        if queued is None:
            current = await self.get(job.job_id, job.owner)
            if current.phase in RUNNING_PHASES:
                return current
            raise JobStateError(
                f"job {job.job_id} is {current.phase} and cannot run again", hint="submit a new job instead"
            )
        self._notify(job.job_id)
        return queued

    async def abort(self, job_id: str, owner: str) -> Job:
        """End a pending, queued or executing job as ABORTED; a finished job is left as it is."""
        job = await self.get(job_id, owner)
        if job.phase not in ACTIVE_PHASES:
            return job
        aborted = await self.store.change(
            job_id, phases=ACTIVE_PHASES, owner=owner, phase="ABORTED", end_time=utc_now()
        )
        if aborted is None:
            return await self.get(job_id, owner)
        self._cancel(job_id)
        self._notify(job_id)
        return aborted

    async def delete(self, job_id: str, owner: str) -> None:
        """Delete a job and its files, aborting it first if it runs here."""
        if await self.store.delete(job_id, owner) is None:
            raise NotFoundError(f"there is no job {job_id}", hint="the jobs you own are listed at /tap/async")
        await self.forget(job_id)

    async def forget(self, job_id: str) -> None:
        """After a job's row is gone: stop its task here, if any, and delete its files."""
        self._cancel(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task], timeout=30)
        await asyncio.to_thread(self.files.remove, job_id)
        self._notify(job_id)

    async def wait(self, job_id: str, owner: str, *, wait_s: float, phase: str | None = None) -> Job:
        """The job once its phase changes, or after ``wait_s`` seconds (UWS 1.1 blocking behaviour).

        Blocks only while the job is PENDING, QUEUED or EXECUTING, and, when
        ``phase`` is given, only while the job is in that phase.
        """
        deadline = time.monotonic() + min(wait_s, WAIT_LIMIT_S)
        job = await self.get(job_id, owner)
        if job.phase not in ACTIVE_PHASES or (phase is not None and job.phase != phase):
            return job
        initial = job.phase
        self._waiting[job_id] = self._waiting.get(job_id, 0) + 1
        try:
            while True:
                # Take the event before reading the job, so that no change falls in between.
                changed = self._changes.setdefault(job_id, asyncio.Event())
                job = await self.get(job_id, owner)
                remaining = deadline - time.monotonic()
                if job.phase != initial or remaining <= 0 or self._stopping:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, POLL_S))
        finally:
            self._waiting[job_id] -= 1
            if not self._waiting[job_id]:
                # The last waiter of a job leaves: drop its event, so that asking for
                # many jobs does not accumulate events.
                del self._waiting[job_id]
                self._changes.pop(job_id, None)

    # -- execution --------------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        job_id = job.job_id
        try:
            try:
                async with self._slots:
                    started = await self.store.change(
                        job_id, phases=["QUEUED"], phase="EXECUTING", start_time=utc_now()
                    )
                    if started is None:
                        return
                    self._notify(job_id)
                    outcome = await self._execute(started)
                    self._cancellable.discard(job_id)
            except asyncio.CancelledError:
                self._cancellable.discard(job_id)
                await self._cancelled(job_id)
                raise
            except Exception as exc:  # the coordinator failed between phases
                self._cancellable.discard(job_id)
                outcome = _failure(exc)
            await self._finish(job_id, outcome)
        except Exception:
            # Left QUEUED or EXECUTING, the job becomes ERROR at the next sweep (its lock is released below).
            log.exception("the outcome of async job %s could not be stored", job_id)
        finally:
            self._cancellable.discard(job_id)
            await self._locks.release(job_id)
            self._tasks.pop(job_id, None)
            self._notify(job_id)

    async def _execute(self, job: Job) -> _Result | JobFailure:
        duration = job.execution_duration or self.service.config.service.execution_duration_max_s
        assert job.start_time is not None
        remaining = max(duration - (utc_now() - job.start_time).total_seconds(), 0.001)
        deadline = time.monotonic() + remaining
        try:
            async with asyncio.timeout(remaining):
                return await self._produce(job, remaining)
        except (TimeoutError, QueryTimeoutError) as exc:
            if isinstance(exc, QueryTimeoutError) and time.monotonic() < deadline - 1.0:
                return _failure(exc)
            summary = (
                f"the job ran longer than its execution duration of {duration} s and was cancelled "
                "(raise executionDuration, or restrict the query: a region, a TOP, fewer columns)"
            )
            document = votable_error_document(summary, infos=[("error_type", "ExecutionDurationExceeded")])
            return JobFailure("fatal", summary, document)
        except Exception as exc:
            return _failure(exc)

    async def _produce(self, job: Job, time_limit_s: float) -> _Result:
        limits = self.service.config.service
        request = self._checked(TapParameters(values=job.parameters))
        result_format = resolve_format(request.format)
        uploads = [
            await asyncio.to_thread(self._read_upload, job.job_id, reference, limits.upload_max_rows)
            for reference in request.uploads
        ]
        opened = await open_query(
            self.service, request, result_format, uploads=uploads, owner=job.owner, time_limit_s=time_limit_s
        )
        name = self.files.result_name(job.job_id, result_format.extension)
        final = self.files.resolve(name)
        partial = final.with_name(final.name + ".part")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                async with contextlib.aclosing(opened.chunks()) as chunks:
                    async for chunk in chunks:
                        out.write(chunk)
            partial.replace(final)
        finally:
            await opened.close()
            partial.unlink(missing_ok=True)
        return _Result(name, result_format.media_type, opened.row_count, opened.overflow)

    def _read_upload(self, job_id: str, reference: UploadReference, max_rows: int) -> UploadedTable:
        content = self.files.upload_path(job_id, reference.name).read_bytes()
        return uploaded_table(reference.name, content, max_rows=max_rows)

    async def _finish(self, job_id: str, outcome: _Result | JobFailure) -> None:
        if isinstance(outcome, _Result):
            done = await self.store.change(
                job_id,
                phases=["EXECUTING"],
                phase="COMPLETED",
                end_time=utc_now(),
                result_path=outcome.name,
                result_media_type=outcome.media_type,
                row_count=outcome.row_count,
                overflow=outcome.overflow,
            )
        else:
            done = await self.store.change(
                job_id,
                phases=RUNNING_PHASES,
                phase="ERROR",
                end_time=utc_now(),
                error_type=outcome.error_type,
                error_summary=outcome.summary,
            )
            if done is not None:
                await asyncio.to_thread(_write_file, self.files.error_path(job_id), outcome.document)
        if done is None:
            # Aborted or deleted while finishing: whoever changed the job first decides its phase.
            await asyncio.to_thread(self.files.remove_results, job_id)

    async def _cancelled(self, job_id: str) -> None:
        """A job task was cancelled: by an ABORT (already stored), a deletion, or the service stopping."""
        try:
            await self._store_cancellation(job_id)
        except Exception:
            log.exception("the end of cancelled async job %s could not be stored", job_id)
        await asyncio.to_thread(self.files.remove_results, job_id)

    async def _store_cancellation(self, job_id: str) -> None:
        if self._stopping:
            await self.store.change(
                job_id,
                phases=RUNNING_PHASES,
                phase="ERROR",
                end_time=utc_now(),
                error_type="transient",
                error_summary=_STOPPED_SUMMARY,
            )
        else:
            await self.store.change(job_id, phases=RUNNING_PHASES, phase="ABORTED", end_time=utc_now())

    def _cancel(self, job_id: str) -> None:
        if job_id in self._cancellable:
            self._tasks[job_id].cancel()

    async def _watch(self) -> None:
        """Cancel local job tasks whose job another process aborted, deleted or failed."""
        while True:
            await asyncio.sleep(POLL_S)
            running = list(self._cancellable)
            if not running:
                continue
            try:
                phases = await self.store.phases(running)
            except (psycopg.Error, OSError) as exc:
                log.warning("could not read the phases of running jobs: %s", exc)
                continue
            for job_id in running:
                if phases.get(job_id) not in RUNNING_PHASES:
                    self._cancel(job_id)

    # -- helpers ----------------------------------------------------------------------------------

    def _checked(self, parameters: TapParameters) -> QueryRequest:
        limits = self.service.config.service
        request = query_request(parameters, maxrec_default=limits.maxrec_default, maxrec_limit=limits.maxrec_limit)
        resolve_format(request.format)
        return request

    async def _keep_uploads(
        self, job_id: str, references: Sequence[UploadReference], files: dict[str, UploadFile]
    ) -> None:
        """Store the uploaded tables (parts of the request, or fetched from their URLs) until the job runs.

        They are parsed when it runs; what cannot be read at all (a missing
        part, an unreachable URL, too many bytes) refuses the request now.
        """
        max_bytes = self.service.config.service.upload_max_bytes
        for reference in references:
            request_part(reference)  # every reference is checked before any URL is fetched
        for reference in references:
            content = await read_upload(
                reference, files, max_bytes=max_bytes, allow_urls=self.service.config.service.upload_from_urls
            )
            await asyncio.to_thread(_write_file, self.files.upload_path(job_id, reference.name), content)

    def _notify(self, job_id: str) -> None:
        event = self._changes.pop(job_id, None)
        if event is not None:
            event.set()


@dataclass(frozen=True)
class _Result:
    name: str
    media_type: str
    row_count: int
    overflow: bool


def _failure(exc: BaseException) -> JobFailure:
    """What a job's error says: the message and hint of a user's or the cluster's error, else a reference."""
    if isinstance(exc, UserError | ClusterError):
        _, document = error_document(exc)
        return JobFailure("fatal" if isinstance(exc, UserError) else "transient", str(exc), document)
    reference = uuid.uuid4().hex[:12]
    log.error("async job failed, reference %s", reference, exc_info=exc)
    summary = f"the service failed to run this job (an internal error, reference {reference})"
    document = votable_error_document(summary, infos=[("error_type", "InternalError"), ("request_id", reference)])
    return JobFailure("transient", summary, document)


def _phase_is_run(parameters: TapParameters) -> bool:
    phase = parameters.get("phase")
    if phase is None:
        return False
    if phase.upper() != "RUN":
        raise TapParameterError(f"PHASE={phase} cannot be given here", hint="send PHASE=RUN to start the job")
    return True


def _stored(values: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: list(found) for name, found in values.items() if name not in _NOT_STORED}


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
