"""index tasks.parent_id

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``tasks.parent_id`` references ``tasks`` with ``ON DELETE SET NULL``: without an index,
every deleted task makes the database scan the whole table for rows naming it (deleting
50,000 tasks ran past two minutes). The index makes that look-up, and listing a task's
children, an index probe (``benchmarks/delete_tasks.py``).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain CREATE INDEX, not a batch operation: on SQLite a batch may rebuild the
    # table, which drops the task_events triggers of migration 0002.
    op.create_index("ix_tasks_parent_id", "tasks", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_parent_id", table_name="tasks")
