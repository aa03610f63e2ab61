"""tasks.has_children

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Set when another task comes to depend on this one, so that the finish statement can say
whether to wake idle agents (a child may be claimable) by reading a column of the row it
updates, instead of probing task_dependencies on every finish.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch operation: on SQLite a batch may rebuild the table,
    # which drops the task_events triggers of migration 0002.
    op.add_column(
        "tasks", sa.Column("has_children", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE tasks SET has_children = true WHERE id IN (SELECT parent_id FROM task_dependencies)"
    )


def downgrade() -> None:
    op.drop_column("tasks", "has_children")
