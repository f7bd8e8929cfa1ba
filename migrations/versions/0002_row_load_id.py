"""Record on every catalog row the load that wrote it.

Adds the nullable column ``dms_load_id`` to every catalog table deployed on a
worker: partitioned parents (ALTER TABLE on the parent reaches all chunk
partitions), director overlap tables and replicated tables.  Loads fill it, so
that a load can be audited or undone row by row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from dms_db.physical import LOAD_ID_COLUMN, overlap_table_name

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def upgrade_coordinator() -> None:
    pass


def downgrade_coordinator() -> None:
    pass


def _deployed_tables() -> list[tuple[str, str]]:
    """(schema, physical table) of every catalog table on this worker."""
    rows = op.get_bind().execute(
        text("SELECT schema_name, table_name, kind FROM dms_worker.deployed_table ORDER BY 1, 2")
    )
    tables = []
    for schema_name, table_name, kind in rows:
        tables.append((schema_name, table_name))
        if kind == "director":
            tables.append((schema_name, overlap_table_name(table_name)))
    return tables


def upgrade_worker() -> None:
    for schema_name, table_name in _deployed_tables():
        column = sa.Column(LOAD_ID_COLUMN, sa.BigInteger(), nullable=True)
        op.add_column(table_name, column, schema=schema_name, if_not_exists=True)


def downgrade_worker() -> None:
    for schema_name, table_name in _deployed_tables():
        op.drop_column(table_name, LOAD_ID_COLUMN, schema=schema_name, if_exists=True)
