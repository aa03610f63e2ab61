"""schedules and triggers

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

- schedules: a task cloned into a queue at each time of an interval or a cron line, or
  each time a task (of a project) reaches a status (a trigger);
- queue_entries.schedule_id: the entry that is a schedule's next run; claiming it fires
  the schedule (the clone runs, the next entry is written in the same transaction);
- schedule_events: a trigger's events not yet run, written by a database trigger on
  tasks' status (every path that changes a status is seen, in its own transaction),
  which also releases the trigger's waiting entry (``held_by = 'trigger'``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The schedules a task's new status fires (NEW: the task row). A trigger never fires on
# a clone of its own task, nor on that task itself: that would loop.
_MATCHING = """
    s.on_status = NEW.status
    AND (s.on_project IS NULL OR s.on_project = NEW.project)
    AND s.task_id <> NEW.id
    AND (NEW.parent_id IS NULL OR NEW.parent_id <> s.task_id)"""

# The schedules' rows are locked first: a claim that fires the same trigger locks its row
# too, so an event is either seen by that claim or releases the entry it writes.
_PG_FUNCTION = f"""
CREATE FUNCTION clearq_schedule_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM schedules s WHERE {_MATCHING}
    ORDER BY s.id FOR UPDATE OF s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO schedule_events (schedule_id, task_id, at)
    SELECT s.id, NEW.id, now() FROM schedules s WHERE {_MATCHING};
    UPDATE queue_entries e SET held_by = NULL
    FROM schedules s
    WHERE e.schedule_id = s.id AND e.held_by = 'trigger' AND {_MATCHING};
    PERFORM pg_notify('clearq_enqueue', 'trigger');
    RETURN NULL;
END $$
"""
_PG_TRIGGER = (
    "CREATE TRIGGER schedule_triggers_on_update AFTER UPDATE OF status ON tasks "
    "FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status) "
    "EXECUTE FUNCTION clearq_schedule_trigger()"
)
# The text layout of UtcDateTime on SQLite (schema.db_now).
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
_SQLITE_TRIGGER = f"""
CREATE TRIGGER schedule_triggers_on_update AFTER UPDATE OF status ON tasks
WHEN NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO schedule_events (schedule_id, task_id, at)
    SELECT s.id, NEW.id, {_SQLITE_NOW} FROM schedules s WHERE {_MATCHING};
    UPDATE queue_entries SET held_by = NULL
    WHERE held_by = 'trigger'
      AND schedule_id IN (SELECT s.id FROM schedules s WHERE {_MATCHING});
END
"""


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=True),
        sa.Column("cron", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("on_status", sa.String(length=16), nullable=True),
        sa.Column("on_project", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_task_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_schedules_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["queues.id"],
            name=op.f("fk_schedules_queue_id_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index("ix_schedules_on_status", "schedules", ["on_status"])
    op.create_index("ix_schedules_task_id", "schedules", ["task_id"])
    op.create_table(
        "schedule_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_events_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_schedule_events_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_events")),
    )
    op.create_index("ix_schedule_events_schedule_id_id", "schedule_events", ["schedule_id", "id"])
    op.create_index("ix_schedule_events_task_id", "schedule_events", ["task_id"])
    # Plain ADD COLUMN, not a batch: on SQLite a batch may rebuild the table.
    op.add_column("queue_entries", sa.Column("schedule_id", sa.Integer(), nullable=True))
    op.create_index("ix_queue_entries_schedule_id", "queue_entries", ["schedule_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS schedule_triggers_on_update ON tasks")
        op.execute("DROP FUNCTION IF EXISTS clearq_schedule_trigger()")
    else:
        op.execute("DROP TRIGGER IF EXISTS schedule_triggers_on_update")
    op.drop_index("ix_queue_entries_schedule_id", table_name="queue_entries")
    op.drop_column("queue_entries", "schedule_id")
    op.drop_index("ix_schedule_events_task_id", table_name="schedule_events")
    op.drop_index("ix_schedule_events_schedule_id_id", table_name="schedule_events")
    op.drop_table("schedule_events")
    op.drop_index("ix_schedules_task_id", table_name="schedules")
    op.drop_index("ix_schedules_on_status", table_name="schedules")
    op.drop_table("schedules")
