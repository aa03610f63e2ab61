"""tasks.beats

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A counter every lease renewal of a running attempt increments. On SQLite the reaper
declares a lease dead only when this counter has not moved for a lease length of the
reaper's own monotonic clock, so expiry no longer depends on the wall clocks of the
processes sharing the file agreeing, or standing still (``clearq.scheduler.expiry``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch operation: on SQLite a batch may rebuild the table,
    # which drops the task_events triggers of migration 0002.
    op.add_column("tasks", sa.Column("beats", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("tasks", "beats")
