"""Where async jobs live: their rows in ``dms.uws_job``, their files under the results directory, their locks.

Every change of phase is one conditional ``UPDATE ... WHERE phase = ANY(...)``,
so two actors racing on a job (an ABORT arriving while the job completes, two
processes sweeping) leave one consistent final phase: whoever updates first
wins and the other learns it from the missing row.

A process marks the jobs it has queued or runs with PostgreSQL session
advisory locks (:class:`JobLocks`) on a connection of its own.  A job that is
QUEUED or EXECUTING while nobody holds its lock was left behind by a process
that stopped or crashed; :meth:`JobStore.fail_orphans` finds such jobs without
touching the ones another live process is running, because the locks vanish
with the process that held them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

__all__ = [
    "ACTIVE_PHASES",
    "FINAL_PHASES",
    "RUNNING_PHASES",
    "Job",
    "JobFiles",
    "JobLocks",
    "JobStore",
    "utc_now",
]

log = logging.getLogger("dms_db.tap.uws")

ACTIVE_PHASES = ("PENDING", "QUEUED", "EXECUTING")
"""Phases a job may still leave by itself or by a client's request."""
RUNNING_PHASES = ("QUEUED", "EXECUTING")
"""Phases in which some process is responsible for the job."""
FINAL_PHASES = ("COMPLETED", "ERROR", "ABORTED")

_TABLE = sql.Identifier("dms", "uws_job")
_COLUMNS = (
    "job_id",
    "owner",
    "run_id",
    "phase",
    "creation_time",
    "start_time",
    "end_time",
    "execution_duration",
    "destruction_time",
    "parameters",
    "error_type",
    "error_summary",
    "result_path",
    "result_media_type",
    "row_count",
    "overflow",
)
_SELECT = sql.SQL(", ").join(sql.Identifier(name) for name in _COLUMNS)
_CHANGEABLE = frozenset(_COLUMNS) - {"job_id", "owner", "creation_time"}

_LOCK_CLASS = 0x55575331
"""First key of the advisory locks of jobs ('UWS1'); the second is ``hashtext(job_id)``."""


def utc_now() -> datetime:
    """The current time in UTC, to the millisecond.

    Job documents show milliseconds; storing no finer keeps a time a client
    read back (e.g. as AFTER) equal to the stored one.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Job:
    """One async job as stored."""

    job_id: str
    owner: str
    run_id: str | None
    phase: str
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    """Seconds the job may execute; 0 means the service's maximum."""
    destruction_time: datetime
    parameters: dict[str, list[str]]
    """Lower-cased TAP parameter names and their values, as the client sent them."""
    error_type: str | None
    error_summary: str | None
    result_path: str | None
    """The result file, relative to the results directory."""
    result_media_type: str | None
    row_count: int | None
    overflow: bool | None


@dataclass(frozen=True)
class JobStore:
    """The ``dms.uws_job`` table, through the service's coordinator pool (autocommit connections)."""

    pool: AsyncConnectionPool

    async def insert(
        self,
        *,
        job_id: str,
        owner: str,
        run_id: str | None,
        execution_duration: int,
        destruction_time: datetime,
        parameters: dict[str, list[str]],
    ) -> Job:
        """Store a new PENDING job."""
        query = sql.SQL(
            "INSERT INTO {table} (job_id, owner, run_id, phase, creation_time, execution_duration, "
            "destruction_time, parameters) VALUES (%s, %s, %s, 'PENDING', %s, %s, %s, %s) RETURNING {columns}"
        ).format(table=_TABLE, columns=_SELECT)
        values = [job_id, owner, run_id, utc_now(), execution_duration, destruction_time, Jsonb(parameters)]
        job = await self._one(query, values)
        assert job is not None
        return job

    async def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, if it exists (and belongs to ``owner`` when given)."""
        query = sql.SQL("SELECT {columns} FROM {table} WHERE job_id = %s").format(columns=_SELECT, table=_TABLE)
        job = await self._one(query, [job_id])
        if job is None or (owner is not None and job.owner != owner):
            return None
        return job

    async def list_jobs(
        self, owner: str, *, phases: Sequence[str] = (), after: datetime | None = None, last: int | None = None
    ) -> list[Job]:
        """The owner's jobs, newest first, filtered as UWS 1.1 section 2.2.2.1 says.

        Without ``phases``, ARCHIVED jobs are left out.
        """
        conditions = [sql.SQL("owner = %s")]
        values: list[Any] = [owner]
        if phases:
            conditions.append(sql.SQL("phase = ANY(%s)"))
            values.append(list(phases))
        else:
            conditions.append(sql.SQL("phase <> 'ARCHIVED'"))
        if after is not None:
            conditions.append(sql.SQL("creation_time > %s"))
            values.append(after)
        query = sql.SQL("SELECT {columns} FROM {table} WHERE {where} ORDER BY creation_time DESC, job_id").format(
            columns=_SELECT, table=_TABLE, where=sql.SQL(" AND ").join(conditions)
        )
        if last is not None:
            query = query + sql.SQL(" LIMIT %s")
            values.append(last)
        return await self._all(query, values)

    async def change(
        self, job_id: str, *, phases: Iterable[str], owner: str | None = None, **changes: Any
    ) -> Job | None:
        """Set columns of a job if it is in one of ``phases``; None if it is not (or does not exist).

        This is how every phase transition happens, so that concurrent ones
        cannot both succeed.
        """
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise ValueError(f"not changeable columns of uws_job: {sorted(unknown)}")
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes)
        values = [Jsonb(value) if name == "parameters" else value for name, value in changes.items()]
        where = sql.SQL("job_id = %s AND phase = ANY(%s)")
        values += [job_id, list(phases)]
        if owner is not None:
            where = where + sql.SQL(" AND owner = %s")
            values.append(owner)
        query = sql.SQL("UPDATE {table} SET {assignments} WHERE {where} RETURNING {columns}").format(
            table=_TABLE, assignments=assignments, where=where, columns=_SELECT
        )
        return await self._one(query, values)

    async def delete(self, job_id: str, owner: str | None = None) -> Job | None:
        """Remove a job's row; returns it, or None if there was none (of that owner)."""
        where = sql.SQL("job_id = %s")
        values: list[Any] = [job_id]
        if owner is not None:
            where = where + sql.SQL(" AND owner = %s")
            values.append(owner)
        query = sql.SQL("DELETE FROM {table} WHERE {where} RETURNING {columns}").format(
            table=_TABLE, where=where, columns=_SELECT
        )
        return await self._one(query, values)

    async def delete_expired(self) -> list[str]:
        """Remove the rows of jobs past their destruction time; returns their ids."""
        query = sql.SQL("DELETE FROM {table} WHERE destruction_time <= %s RETURNING job_id").format(table=_TABLE)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, [utc_now()])
            return [str(row[0]) for row in await cursor.fetchall()]

    async def phases(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The current phase of each of these jobs that still exists."""
        query = sql.SQL("SELECT job_id, phase FROM {table} WHERE job_id = ANY(%s)").format(table=_TABLE)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, [list(job_ids)])
            return {str(job_id): str(phase) for job_id, phase in await cursor.fetchall()}

    async def fail_orphans(self, summary: str) -> list[str]:
        """Make ERROR the QUEUED or EXECUTING jobs whose lock no process holds; returns their ids.

        The transaction-level advisory lock taken in the WHERE clause fails
        for a job whose process still holds its session lock, so only
        abandoned jobs change.  This must run on a pool connection, not on
        the :class:`JobLocks` connection, whose own locks would not conflict.
        """
        query = sql.SQL(
            "UPDATE {table} SET phase = 'ERROR', end_time = %s, error_type = 'transient', error_summary = %s "
            "WHERE phase = ANY(%s) AND pg_try_advisory_xact_lock(%s::integer, hashtext(job_id)) RETURNING job_id"
        ).format(table=_TABLE)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, [utc_now(), summary, list(RUNNING_PHASES), _LOCK_CLASS])
            return [str(row[0]) for row in await cursor.fetchall()]

    async def _one(self, query: sql.Composable, values: Sequence[Any]) -> Job | None:
        async with self.pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(query, values)
            row = await cursor.fetchone()
        return Job(**row) if row is not None else None

    async def _all(self, query: sql.Composable, values: Sequence[Any]) -> list[Job]:
        async with self.pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(query, values)
            rows = await cursor.fetchall()
        return [Job(**row) for row in rows]


class JobLocks:
    """Session advisory locks on a dedicated connection: "this process is responsible for these jobs".

    Pool connections cannot hold them (a session lock would follow the
    connection to its next user), hence a connection of its own.  If that
    connection breaks, it is reopened and every lock taken again.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held: set[str] = set()

    async def open(self) -> None:
        """Connect (and take again any lock held before a reconnection)."""
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        for job_id in sorted(self._held):
            await self._execute("SELECT pg_try_advisory_lock(%s::integer, hashtext(%s))", job_id)

    async def close(self) -> None:
        """Disconnect, releasing every lock."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def acquire(self, job_id: str) -> None:
        """Mark ``job_id`` as this process's responsibility."""
        taken = await self._execute("SELECT pg_try_advisory_lock(%s::integer, hashtext(%s))", job_id)
        self._held.add(job_id)
        if not taken:
            # Only a hash collision with another process's job gets here; the
            # job still runs, it is merely not protected from fail_orphans.
            log.warning("the advisory lock of job %s is held elsewhere", job_id)

    async def release(self, job_id: str) -> None:
        """Give up ``job_id`` (after its final phase is stored)."""
        if job_id in self._held:
            self._held.discard(job_id)
            await self._execute("SELECT pg_advisory_unlock(%s::integer, hashtext(%s))", job_id)

    async def _execute(self, statement: str, job_id: str) -> bool:
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    await self.open()
                assert self._conn is not None
                cursor = await self._conn.execute(statement, [_LOCK_CLASS, job_id])
                row = await cursor.fetchone()
                return bool(row and row[0])
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    await self._conn.close()
                    self._conn = None
                if attempt == 2:
                    log.warning("could not reach the coordinator for the lock of job %s: %s", job_id, exc)
        return False


@dataclass(frozen=True)
class JobFiles:
    """The files of jobs: ``<root>/<job_id>/uploads/<table>``, ``result<ext>``, ``error.xml``.

    Job ids are generated by the service and only used here after they were
    found in the table, so they are safe path components.
    """

    root: Path

    def job_dir(self, job_id: str) -> Path:
        """The directory of one job."""
        return self.root / job_id

    def upload_path(self, job_id: str, table_name: str) -> Path:
        """Where the uploaded table ``table_name`` (an ADQL identifier) is kept."""
        return self.job_dir(job_id) / "uploads" / table_name.lower()

    def result_name(self, job_id: str, extension: str) -> str:
        """The result file of a job, relative to the root (as stored in ``result_path``)."""
        return f"{job_id}/result{extension}"

    def error_path(self, job_id: str) -> Path:
        """The VOTable error document of a failed job."""
        return self.job_dir(job_id) / "error.xml"

    def resolve(self, relative: str) -> Path:
        """The absolute path of a stored ``result_path``."""
        return self.root / relative

    def remove_results(self, job_id: str) -> None:
        """Delete a job's result and error files, finished or partial, keeping its uploads (blocking)."""
        directory = self.job_dir(job_id)
        for path in [*directory.glob("result*"), self.error_path(job_id)]:
            path.unlink(missing_ok=True)

    def remove(self, job_id: str) -> None:
        """Delete every file of a job (blocking: call in a thread)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
