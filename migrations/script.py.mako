"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade(node_role: str) -> None:
    """Upgrade one node; env.py calls this once per node with its role."""
    globals()[f"upgrade_{node_role}"]()


def downgrade(node_role: str) -> None:
    """Downgrade one node; env.py calls this once per node with its role."""
    globals()[f"downgrade_{node_role}"]()


def upgrade_coordinator() -> None:
    ${context.get("coordinator_upgrades", "pass")}


def downgrade_coordinator() -> None:
    ${context.get("coordinator_downgrades", "pass")}


def upgrade_worker() -> None:
    ${context.get("worker_upgrades", "pass")}


def downgrade_worker() -> None:
    ${context.get("worker_downgrades", "pass")}
