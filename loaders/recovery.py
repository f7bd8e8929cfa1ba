"""Finish what crashed writers left behind.

Run by ``dms-db recover`` and at start-up: every prepared transaction of a
dead writer is committed if the coordinator recorded the decision and rolled
back otherwise, and ledger rows of dead loads are closed (``aborted``), so the
same load can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from dms_db.distributed_transaction import resolve_in_doubt
from dms_db.topology import Topology
from loaders import ledger

# Non-load transactions (deploys) carry no owner lock; leave young ones to their writer.
UNOWNED_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class RecoverySummary:
    """What recovery did."""

    committed: tuple[str, ...]
    rolled_back: tuple[str, ...]
    aborted_loads: tuple[int, ...]
    unreachable: tuple[str, ...]


def recover(topology: Topology) -> RecoverySummary:
    """Resolve in-doubt transactions and close the ledger rows of dead loads."""
    with psycopg.connect(topology.coordinator.dsn) as coordinator:
        started = dict(
            coordinator.execute(
                "SELECT transaction_gid, load_id FROM dms.load_ledger WHERE state = 'started'"
            ).fetchall()
        )

        def owner_alive(gid: str, age_seconds: float) -> bool:
            if gid in started:
                return ledger.owner_alive(coordinator, started[gid])
            return age_seconds < UNOWNED_GRACE_SECONDS

        report = resolve_in_doubt(topology, owner_alive=owner_alive)
        aborted = []
        for gid, load_id in started.items():
            if ledger.owner_alive(coordinator, load_id):
                continue
            decided = coordinator.execute("SELECT 1 FROM dms.transaction_outcome WHERE gid = %s", (gid,)).fetchone()
            if decided is None:
                ledger.mark_aborted(coordinator, load_id, "the loader stopped before committing; recovered")
                aborted.append(load_id)
    return RecoverySummary(report.committed, report.rolled_back, tuple(aborted), report.unreachable)
