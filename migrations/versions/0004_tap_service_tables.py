"""Tables of the TAP service on the coordinator: async jobs (UWS) and bearer tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dms_db.metadata import UWS_PHASES

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def upgrade_coordinator() -> None:
    phases = ", ".join(f"'{phase}'" for phase in UWS_PHASES)
    op.create_table(
        "uws_job",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("phase", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("execution_duration", sa.Integer(), nullable=False),
        sa.Column("destruction_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("error_type", sa.String(length=16), nullable=True),
        sa.Column("error_summary", sa.Text(), nullable=True),
        sa.Column("result_path", sa.Text(), nullable=True),
        sa.Column("result_media_type", sa.Text(), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("overflow", sa.Boolean(), nullable=True),
        sa.CheckConstraint(f"phase IN ({phases})", name=op.f("ck_uws_job_phase")),
        sa.CheckConstraint(
            "error_type IS NULL OR error_type IN ('transient', 'fatal')", name=op.f("ck_uws_job_error_type")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_uws_job")),
        schema="dms",
    )
    op.create_index(op.f("ix_uws_job_owner_creation_time"), "uws_job", ["owner", "creation_time"], schema="dms")
    op.create_index(op.f("ix_uws_job_destruction_time"), "uws_job", ["destruction_time"], schema="dms")
    op.create_table(
        "api_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_api_token")),
        schema="dms",
    )
    op.create_index(op.f("ix_api_token_owner"), "api_token", ["owner"], schema="dms")


def downgrade_coordinator() -> None:
    op.drop_index(op.f("ix_api_token_owner"), table_name="api_token", schema="dms")
    op.drop_table("api_token", schema="dms")
    op.drop_index(op.f("ix_uws_job_destruction_time"), table_name="uws_job", schema="dms")
    op.drop_index(op.f("ix_uws_job_owner_creation_time"), table_name="uws_job", schema="dms")
    op.drop_table("uws_job", schema="dms")


def upgrade_worker() -> None:
    pass


def downgrade_worker() -> None:
    pass
