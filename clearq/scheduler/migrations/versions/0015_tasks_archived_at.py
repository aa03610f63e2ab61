"""tasks.archived_at: archived tasks leave the default lists

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

An archived task stays readable by id but leaves ``clearq task list``, ``Task.get_tasks``
and the page's lists unless asked for (``--archived``). Until now ClearML's
``set_archived`` put the tag ``archived`` on it: such tasks become archived at their last
update, and the tag goes. Indexed for the archived-only lists and for the retention of
archived tasks (``CLEARQ_RETENTION_ARCHIVED_DAYS``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ARCHIVED_TAG = "archived"
_tasks = sa.table(
    "tasks",
    sa.column("id", sa.Uuid()),
    sa.column("tags", sa.JSON()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("archived_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX, not a batch operation: on SQLite a batch may
    # rebuild the table, which drops the task_events triggers of migration 0002.
    op.add_column("tasks", sa.Column("archived_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tasks_archived_at", "tasks", ["archived_at"])
    conn = op.get_bind()
    tagged = conn.execute(
        sa.select(_tasks.c.id, _tasks.c.tags).where(
            sa.cast(_tasks.c.tags, sa.Text).like(f'%"{_ARCHIVED_TAG}"%')
        )
    ).all()
    for row in tagged:
        if _ARCHIVED_TAG not in row.tags:
            continue
        conn.execute(
            _tasks.update()
            .where(_tasks.c.id == row.id)
            .values(
                archived_at=_tasks.c.updated_at,
                tags=[t for t in row.tags if t != _ARCHIVED_TAG],
            )
        )


def downgrade() -> None:
    conn = op.get_bind()
    archived = conn.execute(
        sa.select(_tasks.c.id, _tasks.c.tags).where(_tasks.c.archived_at.is_not(None))
    ).all()
    for row in archived:
        conn.execute(
            _tasks.update()
            .where(_tasks.c.id == row.id)
            .values(tags=[*[t for t in row.tags if t != _ARCHIVED_TAG], _ARCHIVED_TAG])
        )
    op.drop_index("ix_tasks_archived_at", table_name="tasks")
    # SQLite 3.35+ drops a column in place (no batch, so the triggers stay).
    op.drop_column("tasks", "archived_at")
