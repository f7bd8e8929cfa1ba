"""The UWS 1.1 XML documents of async jobs: the job list, a job, its parameters and its results.

Elements come in the order of the UWS 1.1 schema (``UWS-v1.1.xsd``), which
clients such as pyvo parse; missing values are ``xsi:nil`` where the schema
makes the element required.  Times are UTC in ISO 8601 with a ``Z``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from api.tap.params import TapParameterError, upload_references
from api.tap.uws.store import Job

_NOT_IN_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

__all__ = [
    "UWS_NS",
    "format_time",
    "job_document",
    "job_list_document",
    "parameters_document",
    "parse_time",
    "results_document",
]

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
UWS_VERSION = "1.1"

ET.register_namespace("uws", UWS_NS)
ET.register_namespace("xlink", XLINK_NS)
ET.register_namespace("xsi", XSI_NS)


def format_time(value: datetime) -> str:
    """A UTC timestamp as UWS writes it: ``2024-05-01T12:00:00.123Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: str, parameter: str) -> datetime:
    """An ISO 8601 timestamp sent by a client (UTC when it has no zone)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise TapParameterError(
            f"{parameter}={value} is not an ISO 8601 timestamp", hint=f"send e.g. {parameter}=2030-01-01T00:00:00Z"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def job_list_document(jobs: Iterable[Job], async_url: str) -> bytes:
    """``uws:jobs``: a ``jobref`` per job with its phase, runId, owner and creation time."""
    root = ET.Element(_uws("jobs"), {"version": UWS_VERSION})
    for job in jobs:
        ref = ET.SubElement(
            root,
            _uws("jobref"),
            {"id": job.job_id, _xlink("type"): "simple", _xlink("href"): f"{async_url}/{job.job_id}"},
        )
        _text(ref, "phase", job.phase)
        if job.run_id is not None:
            _text(ref, "runId", job.run_id)
        _text(ref, "ownerId", job.owner)
        _text(ref, "creationTime", format_time(job.creation_time))
    return _serialise(root)


def job_document(job: Job, job_url: str, *, result_size: int | None) -> bytes:
    """``uws:job``: everything about one job."""
    root = ET.Element(_uws("job"), {"version": UWS_VERSION})
    _text(root, "jobId", job.job_id)
    if job.run_id is not None:
        _text(root, "runId", job.run_id)
    _text(root, "ownerId", job.owner)
    _text(root, "phase", job.phase)
    _text(root, "quote", None)
    _text(root, "creationTime", format_time(job.creation_time))
    _text(root, "startTime", _optional_time(job.start_time))
    _text(root, "endTime", _optional_time(job.end_time))
    _text(root, "executionDuration", str(job.execution_duration))
    _text(root, "destruction", format_time(job.destruction_time))
    root.append(_parameters(job, job_url))
    root.append(_results(job, job_url, result_size))
    if job.phase == "ERROR" and job.error_summary:
        summary = ET.SubElement(root, _uws("errorSummary"), {"type": job.error_type or "fatal", "hasDetail": "true"})
        _text(summary, "message", job.error_summary)
    return _serialise(root)


def parameters_document(job: Job, job_url: str) -> bytes:
    """``uws:parameters`` of one job."""
    return _serialise(_parameters(job, job_url))


def results_document(job: Job, job_url: str, *, result_size: int | None) -> bytes:
    """``uws:results`` of one job: the result once it is COMPLETED, else nothing."""
    return _serialise(_results(job, job_url, result_size))


def _parameters(job: Job, job_url: str) -> ET.Element:
    element = ET.Element(_uws("parameters"))
    for name, values in sorted(job.parameters.items()):
        for value in values:
            ET.SubElement(element, _uws("parameter"), {"id": name}).text = xml_safe(value)
    for name, part in _uploaded_parts(job.parameters.get("upload", ())):
        attributes = {"id": part, "byReference": "true"}
        ET.SubElement(element, _uws("parameter"), attributes).text = f"{job_url}/uploads/{name.lower()}"
    return element


def _uploaded_parts(values: Sequence[str]) -> list[tuple[str, str]]:
    """(table name, multipart part name) of each upload that came with the job's request."""
    try:
        references = upload_references(values)
    except TapParameterError:
        return []
    found = []
    for reference in references:
        scheme, _, part = reference.source.partition(":")
        if scheme.lower() == "param" and part:
            found.append((reference.name, part))
    return found


def _results(job: Job, job_url: str, result_size: int | None) -> ET.Element:
    element = ET.Element(_uws("results"))
    if job.phase == "COMPLETED" and job.result_path is not None:
        attributes = {
            "id": "result",
            _xlink("type"): "simple",
            _xlink("href"): f"{job_url}/results/result",
            "mime-type": job.result_media_type or "application/octet-stream",
        }
        if result_size is not None:
            attributes["size"] = str(result_size)
        # No row count: the schema admits extra attributes only in urn:uwscustom, a namespace without a schema
        # that validators warn about; the result's overflow INFO and its rows say what a client needs.
        ET.SubElement(element, _uws("result"), attributes)
    return element


def _text(parent: ET.Element, name: str, value: str | None) -> ET.Element:
    """A child element with text, or ``xsi:nil="true"`` when the value is missing."""
    child = ET.SubElement(parent, _uws(name))
    if value is None:
        child.set(f"{{{XSI_NS}}}nil", "true")
    else:
        child.text = xml_safe(value)
    return child


def xml_safe(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot hold (ElementTree would write them as they are).

    Client-chosen text (RUNID, the query) can contain control characters; one
    of them would make the whole job list unreadable.

    >>> xml_safe("run\\x00id\\x1b")
    'runid'
    """
    return _NOT_IN_XML.sub("", value)


def _optional_time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _uws(name: str) -> str:
    return f"{{{UWS_NS}}}{name}"


def _xlink(name: str) -> str:
    return f"{{{XLINK_NS}}}{name}"


def _serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
