"""TAP request parameters: read case-insensitively from a query string, a form or a multipart body.

TAP 1.1 (section 2.3) says parameter names are case-insensitive and values
are not; a client may send them in the URL of a GET, in an urlencoded POST
body or in a multipart POST whose file parts carry the tables that
``UPLOAD=name,param:part`` refers to.  :func:`read_parameters` folds all of
them into one :class:`TapParameters`; :func:`query_request` checks the ones a
query needs (REQUEST, LANG, QUERY, FORMAT, MAXREC, UPLOAD) and says exactly
which value is wrong and what would be right.  A sync query is checked
before it runs; an async job when it runs (its creation checks only UPLOAD).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request

from dms_db.errors import UserError

__all__ = [
    "ADQL_LANGUAGES",
    "QueryRequest",
    "TapParameterError",
    "TapParameters",
    "UploadReference",
    "query_request",
    "read_parameters",
]

ADQL_LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")
"""LANG values accepted: ADQL 2.1 is a superset of 2.0 for every query this service runs."""


class TapParameterError(UserError):
    """A TAP parameter is missing, repeated or has a value the service cannot accept."""

    error_type = "TapParameterError"


@dataclass(frozen=True)
class UploadReference:
    """One entry of UPLOAD: the table name to expose as ``TAP_UPLOAD.<name>`` and where its rows are."""

    name: str
    source: str
    """``param:<part>`` (a part of this multipart request) or an http(s) URL the service fetches."""


@dataclass
class TapParameters:
    """Every parameter of one request: lower-cased names, values as sent, and the multipart files."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The value of a single-valued parameter, or None; repeating it is an error."""
        found = self.values.get(name.lower())
        if not found:
            return None
        distinct = set(found)
        if len(distinct) > 1:
            raise TapParameterError(
                f"parameter {name.upper()} is given {len(found)} times with different values",
                hint=f"send {name.upper()} once",
            )
        return found[0]

    def all(self, name: str) -> list[str]:
        """Every value of a multi-valued parameter (UPLOAD), in order."""
        return list(self.values.get(name.lower(), []))

    def add(self, name: str, value: str) -> None:
        """Record one occurrence of ``name``; a NUL character (which no database text can hold) is refused."""
        if "\x00" in value or "\x00" in name:
            raise TapParameterError(
                f"parameter {name.upper().replace(chr(0), '')} contains a NUL character",
                hint="remove the NUL (0x00) characters from the request",
            )
        self.values.setdefault(name.lower(), []).append(value)


async def read_parameters(request: Request) -> TapParameters:
    """Collect the parameters of a GET or POST request (urlencoded or multipart)."""
    parameters = TapParameters()
    _add_all(parameters, request.query_params.multi_items())
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.form(max_files=64, max_fields=1000)
            except Exception as exc:  # starlette reports a malformed body in several exception types
                raise TapParameterError(
                    f"the request body could not be read as {content_type}: {exc}",
                    hint="send parameters as an urlencoded form, or as multipart/form-data with the UPLOAD files",
                ) from None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    parameters.files[key] = value
                else:
                    parameters.add(key, value)
    return parameters


def _add_all(parameters: TapParameters, items: Iterable[tuple[str, str]]) -> None:
    for key, value in items:
        parameters.add(key, value)


@dataclass(frozen=True)
class QueryRequest:
    """A checked TAP query: what to run, how many rows, in which format, with which uploads."""

    query: str
    lang: str
    format: str | None
    maxrec: int
    maxrec_given: bool
    uploads: tuple[UploadReference, ...] = ()
    runid: str | None = None


def query_request(parameters: TapParameters, *, maxrec_default: int, maxrec_limit: int) -> QueryRequest:
    """Check the query parameters of a sync request or an async job.

    MAXREC above the service's limit is lowered to it (TAP 1.1 section
    2.7.4 lets a service do so); the overflow flag then tells the client.
    """
    request = parameters.get("request")
    if request is not None and request.lower() != "doquery":
        raise TapParameterError(f"REQUEST={request} is not supported", hint="use REQUEST=doQuery, or leave REQUEST out")
    lang = parameters.get("lang")
    if lang is None:
        raise TapParameterError("the LANG parameter is missing", hint="send LANG=ADQL with the query")
    if lang.upper() not in ADQL_LANGUAGES:
        raise TapParameterError(
            f"LANG={lang} is not supported", hint=f"this service accepts LANG={', '.join(ADQL_LANGUAGES)}"
        )
    query = parameters.get("query")
    if query is None or not query.strip():
        raise TapParameterError("the QUERY parameter is missing or empty", hint="send the ADQL text as QUERY")
    maxrec_text = parameters.get("maxrec")
    maxrec = maxrec_default
    if maxrec_text is not None:
        try:
            maxrec = int(maxrec_text.strip())
        except ValueError:
            raise TapParameterError(
                f"MAXREC={maxrec_text} is not an integer", hint="send a whole number of rows, e.g. MAXREC=1000"
            ) from None
        if maxrec < 0:
            raise TapParameterError(f"MAXREC={maxrec} is negative", hint="send MAXREC=0 or more")
    return QueryRequest(
        query=query,
        lang=lang.upper(),
        format=_format(parameters),
        maxrec=min(maxrec, maxrec_limit),
        maxrec_given=maxrec_text is not None,
        uploads=tuple(upload_references(parameters.all("upload"))),
        runid=parameters.get("runid"),
    )


def _format(parameters: TapParameters) -> str | None:
    response_format = parameters.get("responseformat")
    legacy = parameters.get("format")
    return response_format if response_format is not None else legacy


def upload_references(values: Iterable[str]) -> list[UploadReference]:
    """Parse UPLOAD values: ``name,uri`` pairs separated by ``;``, possibly over several parameters."""
    references: list[UploadReference] = []
    seen: set[str] = set()
    for value in values:
        for entry in value.split(";"):
            if not entry.strip():
                continue
            name, comma, source = entry.strip().partition(",")
            name, source = name.strip(), source.strip()
            if not comma or not name or not source:
                raise TapParameterError(
                    f"UPLOAD entry {entry.strip()!r} is not of the form name,uri",
                    hint="send UPLOAD=mytable,param:part with the table in the multipart part 'part', "
                    "or UPLOAD=mytable,https://<where the table is>",
                )
            if not name.replace("_", "a").isalnum() or not name[0].isalpha():
                raise TapParameterError(
                    f"UPLOAD table name {name!r} is not a valid ADQL identifier",
                    hint="use letters, digits and underscores, starting with a letter",
                )
            if name.lower() in seen:
                raise TapParameterError(f"UPLOAD names the table {name!r} twice", hint="give each upload its own name")
            seen.add(name.lower())
            references.append(UploadReference(name, source))
    return references
