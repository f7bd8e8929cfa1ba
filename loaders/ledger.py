"""The coordinator's load ledger: one row per load, the basis of idempotence and recovery.

A load is identified by its target table and the SHA-256 of its inputs.  Its
row is written ``started`` before any data moves (in its own transaction, so
that recovery can see it), and turned ``committed`` inside the coordinator's
decision transaction, so a load is committed in the ledger exactly when it is
committed everywhere.  While it runs, the loader holds a session advisory lock
keyed by the load id: recovery takes a free lock as proof that the loader died.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

LOCK_NAMESPACE = 0x646D73  # "dms": keeps dms-db's advisory locks apart from others'


@dataclass(frozen=True)
class CommittedLoad:
    """A load that already happened."""

    load_id: int
    row_count: int
    finished_at: object


def committed_load(conn: psycopg.Connection, schema_name: str, table_name: str, digest: str) -> CommittedLoad | None:
    """The committed load of these exact inputs into this table, if any."""
    row = conn.execute(
        "SELECT load_id, row_count, finished_at FROM dms.load_ledger WHERE schema_name = %s AND table_name = %s "
        "AND source_digest = %s AND state = 'committed'",
        (schema_name, table_name, digest),
    ).fetchone()
    return CommittedLoad(*row) if row else None


def begin_load(
    conn: psycopg.Connection, schema_name: str, table_name: str, source_name: str, digest: str, gid: str
) -> int:
    """Record a started load (committed at once) and take its owner lock; returns the load id."""
    load_id = conn.execute(
        "INSERT INTO dms.load_ledger (schema_name, table_name, source_name, source_digest, state, transaction_gid) "
        "VALUES (%s, %s, %s, %s, 'started', %s) RETURNING load_id",
        (schema_name, table_name, source_name, digest, gid),
    ).fetchone()[0]
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, _lock_key(load_id)))
    conn.commit()
    return int(load_id)


def mark_committed(conn: psycopg.Connection, load_id: int, row_count: int) -> None:
    """Inside the decision transaction: the load is committed."""
    conn.execute(
        "UPDATE dms.load_ledger SET state = 'committed', row_count = %s, finished_at = now() WHERE load_id = %s",
        (row_count, load_id),
    )


def mark_aborted(conn: psycopg.Connection, load_id: int, reason: str) -> None:
    """The load failed or was rejected; nothing of it is visible."""
    conn.execute(
        "UPDATE dms.load_ledger SET state = 'aborted', error = %s, finished_at = now() "
        "WHERE load_id = %s AND state = 'started'",
        (reason[:2000], load_id),
    )
    conn.commit()


def release(conn: psycopg.Connection, load_id: int) -> None:
    """Give up the owner lock of a finished load."""
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, _lock_key(load_id)))
    conn.commit()


def owner_alive(conn: psycopg.Connection, load_id: int) -> bool:
    """True while the loader of ``load_id`` still holds its lock."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, _lock_key(load_id))).fetchone()[0]
    if got:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, _lock_key(load_id)))
    conn.commit()
    return not got


def _lock_key(load_id: int) -> int:
    """Advisory lock keys are 32-bit; load ids wrap into that range."""
    return load_id & 0x7FFFFFFF
