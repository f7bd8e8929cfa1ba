"""Describe TAP_SCHEMA in TAP_SCHEMA itself, as TAP 1.1 requires.

TAP clients (and the ADQL translator, which resolves names against
TAP_SCHEMA) discover the TAP_SCHEMA tables through their own rows in
``TAP_SCHEMA.schemas``, ``tables``, ``columns``, ``keys`` and
``key_columns``.  The rows come from :func:`dms_db.tap_schema.tap_schema_self_rows`,
the same definition that creates the tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import delete, insert

from dms_db.metadata import tap_schema_tables
from dms_db.tap_schema import TAP_SCHEMA_NAME, tap_schema_self_rows

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def _in_insert_order():
    rows = tap_schema_self_rows()
    return (
        (tap_schema_tables.schemas, rows.schemas),
        (tap_schema_tables.tables, rows.tables),
        (tap_schema_tables.columns, rows.columns),
        (tap_schema_tables.keys, rows.keys),
        (tap_schema_tables.key_columns, rows.key_columns),
    )


def upgrade_coordinator() -> None:
    bind = op.get_bind()
    for table, values in _in_insert_order():
        if values:
            bind.execute(insert(table), list(values))


def downgrade_coordinator() -> None:
    bind = op.get_bind()
    t = tap_schema_tables
    prefix = f"{TAP_SCHEMA_NAME}.%"
    self_keys = [row["key_id"] for row in tap_schema_self_rows().keys]
    bind.execute(delete(t.key_columns).where(t.key_columns.c.key_id.in_(self_keys)))
    bind.execute(delete(t.keys).where(t.keys.c.key_id.in_(self_keys)))
    bind.execute(delete(t.columns).where(t.columns.c.table_name.like(prefix)))
    bind.execute(delete(t.tables).where(t.tables.c.schema_name == TAP_SCHEMA_NAME))
    bind.execute(delete(t.schemas).where(t.schemas.c.schema_name == TAP_SCHEMA_NAME))


def upgrade_worker() -> None:
    pass


def downgrade_worker() -> None:
    pass
