"""List TAP_SCHEMA.columns' own column ``size`` delimited, as ``"size"``.

``SIZE`` is a reserved word of ADQL, so TAP 1.1 (section 4.3) wants its
``column_name`` row written as a query must write it.  Rows written by
revision 0003 before this change are updated; the ADQL layer strips the
quotes to find the real column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import update

from dms_db.metadata import tap_schema_tables
from dms_db.tap_schema import TAP_SCHEMA_NAME

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = f"{TAP_SCHEMA_NAME}.columns"


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def _rename(old: str, new: str) -> None:
    columns = tap_schema_tables.columns
    op.get_bind().execute(
        update(columns).where(columns.c.table_name == _TABLE, columns.c.column_name == old).values(column_name=new)
    )


def upgrade_coordinator() -> None:
    _rename("size", '"size"')


def downgrade_coordinator() -> None:
    _rename('"size"', "size")


def upgrade_worker() -> None:
    pass


def downgrade_worker() -> None:
    pass
