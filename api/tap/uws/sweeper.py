"""The job sweeper: deletes jobs past their destruction time, and fails jobs whose process is gone.

It runs once when the service starts (so jobs a stopped or crashed process
left QUEUED or EXECUTING are ERROR before anyone asks) and then every
``interval`` seconds.  Abandoned jobs are recognised by their advisory lock
(see :mod:`api.tap.uws.store`), so a sweep never touches a job that another
live process is running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.tap.uws.store import JobStore

__all__ = ["RESTART_SUMMARY", "SWEEP_INTERVAL_S", "Sweep", "sweep_forever", "sweep_jobs"]

log = logging.getLogger("dms_db.tap.uws")

SWEEP_INTERVAL_S = 60.0
RESTART_SUMMARY = "the service restarted while the job ran; resubmit it"


@dataclass(frozen=True)
class Sweep:
    """What one sweep did."""

    failed: tuple[str, ...]
    """Jobs made ERROR because no process was running them any more."""
    deleted: tuple[str, ...]
    """Jobs deleted because their destruction time had passed."""


async def sweep_jobs(store: JobStore, forget: Callable[[str], Awaitable[None]]) -> Sweep:
    """Fail abandoned jobs, then delete expired ones; ``forget`` stops a deleted job's task and removes its files."""
    failed = await store.fail_orphans(RESTART_SUMMARY)
    if failed:
        log.warning("jobs left running by a stopped service are now ERROR: %s", ", ".join(failed))
    deleted = await store.delete_expired()
    for job_id in deleted:
        await forget(job_id)
    return Sweep(tuple(failed), tuple(deleted))


async def sweep_forever(store: JobStore, forget: Callable[[str], Awaitable[None]], interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled; a failed sweep is logged and retried next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_jobs(store, forget)
        except Exception:
            log.exception("the async job sweep failed")
