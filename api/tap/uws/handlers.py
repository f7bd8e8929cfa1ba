"""HTTP handlers of /tap/async: the UWS 1.1 job list, jobs and their sub-resources.

Each handler reads the request's parameters (names case-insensitive, as TAP
wants), asks the :class:`~api.tap.uws.runner.JobManager` and shapes the
answer: an XML document, a short text/plain value, a file, or a ``303 See
Other`` to the job after a change.  Errors are raised as ``dms_db.errors``
exceptions and become VOTable error documents (:mod:`api.tap.errors`);
another owner's job answers 404 like a job that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from api.tap.auth import request_owner
from api.tap.errors import VOTABLE_MEDIA_TYPE
from api.tap.formats import votable_error_document
from api.tap.handlers import TAP_PARAMETERS, base_url
from api.tap.params import TapParameterError, read_parameters
from api.tap.uws.documents import (
    format_time,
    job_document,
    job_list_document,
    parameters_document,
    parse_time,
    results_document,
)
from api.tap.uws.runner import WAIT_LIMIT_S, JobManager
from api.tap.uws.store import Job
from dms_db.errors import NotFoundError
from dms_db.metadata import UWS_PHASES

__all__ = ["uws_router"]

XML = "text/xml"
TEXT = "text/plain"

Owner = Annotated[str, Depends(request_owner)]
"""Who asks (a FastAPI dependency); module-level so that FastAPI can resolve the postponed annotation."""


def jobs_of(request: Request) -> JobManager:
    """The running service's job manager."""
    return request.app.state.jobs


def uws_router() -> APIRouter:
    """Routes of /tap/async (include with prefix ``/tap``)."""
    router = APIRouter(prefix="/async", tags=["async"])

    @router.post(
        "",
        summary="Create an async job",
        status_code=303,
        openapi_extra={"parameters": TAP_PARAMETERS},
        response_class=Response,
    )
    async def create_job(request: Request, owner: Owner) -> Response:
        try:
            job = await jobs_of(request).create(owner, await read_parameters(request))
        finally:
            await request.close()  # the uploaded parts' temporary files
        return RedirectResponse(_job_url(request, job.job_id), status_code=303)

    @router.get("", summary="List your async jobs (filters PHASE, AFTER, LAST)", response_class=Response)
    async def list_jobs(request: Request, owner: Owner) -> Response:
        parameters = await read_parameters(request)
        after = parameters.get("after")
        jobs = await jobs_of(request).list_jobs(
            owner,
            phases=[_phase_name(value) for value in parameters.all("phase")],
            after=parse_time(after, "AFTER") if after is not None else None,
            last=_positive_int(parameters.get("last"), "LAST"),
        )
        return Response(job_list_document(jobs, f"{base_url(request)}/async"), media_type=XML)

    @router.get("/{job_id}", summary="A job (WAIT and PHASE block until it changes)", response_class=Response)
    async def get_job(request: Request, job_id: str, owner: Owner) -> Response:
        parameters = await read_parameters(request)
        wait = _wait_seconds(parameters.get("wait"))
        manager = jobs_of(request)
        if wait:
            phase = parameters.get("phase")
            job = await manager.wait(job_id, owner, wait_s=wait, phase=_phase_name(phase) if phase else None)
        else:
            job = await manager.get(job_id, owner)
        return Response(_job_xml(request, manager, job), media_type=XML)

    @router.post("/{job_id}", summary="ACTION=DELETE deletes the job", response_class=Response)
    async def post_job(request: Request, job_id: str, owner: Owner) -> Response:
        action = (await read_parameters(request)).get("action")
        if action is None or action.upper() != "DELETE":
            raise TapParameterError(f"ACTION={action} is not supported here", hint="send ACTION=DELETE")
        await jobs_of(request).delete(job_id, owner)
        return RedirectResponse(f"{base_url(request)}/async", status_code=303)

    @router.delete("/{job_id}", summary="Delete the job and its result", response_class=Response)
    async def delete_job(request: Request, job_id: str, owner: Owner) -> Response:
        await jobs_of(request).delete(job_id, owner)
        return RedirectResponse(f"{base_url(request)}/async", status_code=303)

    @router.get("/{job_id}/phase", summary="The job's phase", response_class=Response)
    async def get_phase(request: Request, job_id: str, owner: Owner) -> Response:
        return Response((await jobs_of(request).get(job_id, owner)).phase, media_type=TEXT)

    @router.post("/{job_id}/phase", summary="PHASE=RUN starts the job, PHASE=ABORT aborts it", response_class=Response)
    async def post_phase(request: Request, job_id: str, owner: Owner) -> Response:
        phase = (await read_parameters(request)).get("phase")
        manager = jobs_of(request)
        if phase is not None and phase.upper() == "RUN":
            await manager.run(await manager.get(job_id, owner))
        elif phase is not None and phase.upper() == "ABORT":
            await manager.abort(job_id, owner)
        else:
            raise TapParameterError(f"PHASE={phase} cannot be requested", hint="send PHASE=RUN or PHASE=ABORT")
        return RedirectResponse(_job_url(request, job_id), status_code=303)

    @router.get("/{job_id}/executionduration", summary="The job's run-time limit (s)", response_class=Response)
    async def get_execution_duration(request: Request, job_id: str, owner: Owner) -> Response:
        return Response(str((await jobs_of(request).get(job_id, owner)).execution_duration), media_type=TEXT)

    @router.post("/{job_id}/executionduration", summary="Change the run-time limit", response_class=Response)
    async def post_execution_duration(request: Request, job_id: str, owner: Owner) -> Response:
        text = (await read_parameters(request)).get("executionduration")
        seconds = _positive_int(text, "EXECUTIONDURATION", allow_zero=True)
        if seconds is None:
            raise TapParameterError("EXECUTIONDURATION is missing", hint="send EXECUTIONDURATION=<seconds>")
        await jobs_of(request).set_execution_duration(job_id, owner, seconds)
        return RedirectResponse(_job_url(request, job_id), status_code=303)

    @router.get("/{job_id}/destruction", summary="When the job will be deleted", response_class=Response)
    async def get_destruction(request: Request, job_id: str, owner: Owner) -> Response:
        job = await jobs_of(request).get(job_id, owner)
        return Response(format_time(job.destruction_time), media_type=TEXT)

    @router.post("/{job_id}/destruction", summary="Change when the job will be deleted", response_class=Response)
    async def post_destruction(request: Request, job_id: str, owner: Owner) -> Response:
        text = (await read_parameters(request)).get("destruction")
        if text is None:
            raise TapParameterError("DESTRUCTION is missing", hint="send DESTRUCTION=<ISO 8601 timestamp>")
        await jobs_of(request).set_destruction(job_id, owner, parse_time(text, "DESTRUCTION"))
        return RedirectResponse(_job_url(request, job_id), status_code=303)

    @router.get("/{job_id}/error", summary="The VOTable error document of a failed job", response_class=Response)
    async def get_error(request: Request, job_id: str, owner: Owner) -> Response:
        manager = jobs_of(request)
        job = await manager.get(job_id, owner)
        if job.phase != "ERROR" or not job.error_summary:
            raise NotFoundError(f"job {job_id} has no error", hint=f"its phase is {job.phase}")
        path = manager.files.error_path(job_id)
        try:
            document = await asyncio.to_thread(path.read_bytes)
        except OSError:
            # Jobs failed by the sweeper (or whose file is gone) have only their summary.
            document = votable_error_document(job.error_summary, infos=[("error_type", job.error_type or "fatal")])
        return Response(document, media_type=VOTABLE_MEDIA_TYPE)

    @router.get("/{job_id}/quote", summary="When the job is expected to end (not estimated)", response_class=Response)
    async def get_quote(request: Request, job_id: str, owner: Owner) -> Response:
        await jobs_of(request).get(job_id, owner)
        return Response("", media_type=TEXT)

    @router.get("/{job_id}/owner", summary="The job's owner", response_class=Response)
    async def get_owner(request: Request, job_id: str, owner: Owner) -> Response:
        return Response((await jobs_of(request).get(job_id, owner)).owner, media_type=TEXT)

    @router.get("/{job_id}/parameters", summary="The job's parameters", response_class=Response)
    async def get_parameters(request: Request, job_id: str, owner: Owner) -> Response:
        job = await jobs_of(request).get(job_id, owner)
        return Response(parameters_document(job, _job_url(request, job_id)), media_type=XML)

    @router.post("/{job_id}/parameters", summary="Change parameters of a PENDING job", response_class=Response)
    async def post_parameters(request: Request, job_id: str, owner: Owner) -> Response:
        try:
            await jobs_of(request).set_parameters(job_id, owner, await read_parameters(request))
        finally:
            await request.close()
        return RedirectResponse(_job_url(request, job_id), status_code=303)

    @router.get("/{job_id}/results", summary="The job's results", response_class=Response)
    async def get_results(request: Request, job_id: str, owner: Owner) -> Response:
        manager = jobs_of(request)
        job = await manager.get(job_id, owner)
        document = results_document(job, _job_url(request, job_id), result_size=_result_size(manager, job))
        return Response(document, media_type=XML)

    @router.get("/{job_id}/results/result", summary="The query result", response_class=Response)
    async def get_result(request: Request, job_id: str, owner: Owner) -> Response:
        manager = jobs_of(request)
        job = await manager.get(job_id, owner)
        size = _result_size(manager, job)
        if size is None or job.result_path is None:
            raise NotFoundError(
                f"job {job_id} has no result (its phase is {job.phase})",
                hint="wait until the job is COMPLETED (GET the job with WAIT=60)",
            )
        return FileResponse(manager.files.resolve(job.result_path), media_type=job.result_media_type)

    @router.get("/{job_id}/uploads/{table_name}", summary="A table uploaded with the job", response_class=Response)
    async def get_upload(request: Request, job_id: str, table_name: str, owner: Owner) -> Response:
        manager = jobs_of(request)
        await manager.get(job_id, owner)
        path = manager.files.upload_path(job_id, table_name)
        if not table_name.replace("_", "a").isalnum() or not path.is_file():
            raise NotFoundError(f"job {job_id} has no uploaded table {table_name}")
        return FileResponse(path, media_type="application/octet-stream")

    return router


def _job_url(request: Request, job_id: str) -> str:
    return f"{base_url(request)}/async/{job_id}"


def _job_xml(request: Request, manager: JobManager, job: Job) -> bytes:
    return job_document(job, _job_url(request, job.job_id), result_size=_result_size(manager, job))


def _result_size(manager: JobManager, job: Job) -> int | None:
    """Bytes of a completed job's result file; None if there is none."""
    if job.phase != "COMPLETED" or job.result_path is None:
        return None
    try:
        return manager.files.resolve(job.result_path).stat().st_size
    except OSError:
        return None


def _phase_name(value: str) -> str:
    phase = value.strip().upper()
    if phase not in UWS_PHASES:
        raise TapParameterError(f"PHASE={value} is not a UWS phase", hint=f"use one of {', '.join(UWS_PHASES)}")
    return phase


def _wait_seconds(text: str | None) -> float:
    """WAIT in seconds, capped; -1 (or any negative value) means as long as the service allows."""
    if text is None:
        return 0.0
    try:
        seconds = float(text.strip())
    except ValueError:
        raise TapParameterError(
            f"WAIT={text} is not a number of seconds", hint="send e.g. WAIT=30, or WAIT=-1"
        ) from None
    return WAIT_LIMIT_S if seconds < 0 else min(seconds, WAIT_LIMIT_S)


def _positive_int(text: str | None, name: str, *, allow_zero: bool = False) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0 or (value == 0 and not allow_zero):
        raise TapParameterError(f"{name}={text} is not a positive whole number", hint=f"send e.g. {name}=10")
    return value
