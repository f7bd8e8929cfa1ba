"""A counter of changes to what query engines cache: ``dms.metadata_epoch``.

A query engine (the TAP service above all) reads the catalogs and the chunk
placement once and keeps them.  Without a signal, a long-running service
never saw chunks placed by a later load (their rows were silently left out)
nor catalogs deployed or altered after it started.

Statement-level triggers on every table those caches are read from add one
to the single row of ``dms.metadata_epoch`` in the changing transaction, so
the new value becomes visible exactly when the change does (a distributed
load's included, at its COMMIT PREPARED).  An engine reads the counter at the
start of every query and drops its caches when it moved.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dms_db.metadata import METADATA_EPOCH_SOURCES

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = "dms.bump_metadata_epoch"
_TRIGGER = "dms_bump_metadata_epoch"


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def _quoted(schema_name: str, table_name: str) -> str:
    preparer = op.get_bind().dialect.identifier_preparer
    return f"{preparer.quote_identifier(schema_name)}.{preparer.quote_identifier(table_name)}"


def upgrade_coordinator() -> None:
    op.create_table(
        "metadata_epoch",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("singleton", name=op.f("ck_metadata_epoch_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_metadata_epoch")),
        schema="dms",
    )
    op.execute("INSERT INTO dms.metadata_epoch (singleton, epoch) VALUES (true, 0)")
    op.execute(
        "CREATE FUNCTION dms.bump_metadata_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE dms.metadata_epoch SET epoch = epoch + 1; RETURN NULL; END $$"
    )
    for schema_name, table_name in METADATA_EPOCH_SOURCES:
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {_quoted(schema_name, table_name)} FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
        )


def downgrade_coordinator() -> None:
    for schema_name, table_name in METADATA_EPOCH_SOURCES:
        op.execute(f"DROP TRIGGER {_TRIGGER} ON {_quoted(schema_name, table_name)}")
    op.execute(f"DROP FUNCTION {_FUNCTION}()")
    op.drop_table("metadata_epoch", schema="dms")


def upgrade_worker() -> None:
    pass


def downgrade_worker() -> None:
    pass
