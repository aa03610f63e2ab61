"""tasks.created_by: who made each task

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

The user a task was made by (``CLEARQ_USER``, else the OS user), indexed so that
``clearq task list --user NAME`` is an index probe. Tasks made before stay NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX, not a batch operation: on SQLite a batch may
    # rebuild the table, which drops the task_events triggers of migration 0002.
    op.add_column("tasks", sa.Column("created_by", sa.Text()))
    op.create_index("ix_tasks_created_by", "tasks", ["created_by"])


def downgrade() -> None:
    op.drop_index("ix_tasks_created_by", table_name="tasks")
    # SQLite 3.35+ drops a column in place (no batch, so the triggers stay).
    op.drop_column("tasks", "created_by")
