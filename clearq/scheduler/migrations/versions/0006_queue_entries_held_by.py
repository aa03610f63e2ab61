"""queue_entries.held_by

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

An entry held by an outside launcher (``slurm:<job id>`` while the task waits in Slurm's
queue) stays in its queue, so the task is still ``queued`` and its place is kept, but the
agents' claim passes it over; ``clearq task run ID`` in the launched job claims it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (never a batch operation: see 0004).
    op.add_column("queue_entries", sa.Column("held_by", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("queue_entries", "held_by")
