"""index task_events by time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The orchestration page reads queue lengths and waits over a time range from
task_events; without this index those reads scan the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_events_at", "task_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_task_events_at", table_name="task_events")
