"""workers.windows: an agent's claim windows as it published them

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01

``clearq agent --uptime/--downtime`` writes its windows' texts and its machine's zone at
registration, so that the warning on enqueue (``clearq.scheduler.serving``) counts a worker only
inside its window. NULL: no windows (it claims at any time).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("windows", sa.JSON()))


def downgrade() -> None:
    op.drop_column("workers", "windows")
