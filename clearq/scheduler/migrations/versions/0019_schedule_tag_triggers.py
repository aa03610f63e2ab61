"""triggers on a tag: a task gaining a tag fires a trigger

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01

- schedules.on_tag: a trigger that fires when a task (of its project) gains this tag;
- a database trigger on tasks' tags, beside migration 0016's on their status: in the
  transaction that changes a task's tags, whichever path made it, it records the event
  (``schedule_events``) and releases the trigger's waiting clone, as 0016's does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# As migration 0016's: a trigger never fires on its own task nor on a clone of it.
_OTHERS = """
    AND (s.on_project IS NULL OR s.on_project = NEW.project)
    AND s.task_id <> NEW.id
    AND (NEW.parent_id IS NULL OR NEW.parent_id <> s.task_id)"""
_PG_MATCHING = (
    "s.on_tag IS NOT NULL AND NEW.tags::jsonb ? s.on_tag "
    "AND NOT (COALESCE(OLD.tags::jsonb, '[]'::jsonb) ? s.on_tag)" + _OTHERS
)
_PG_FUNCTION = f"""
CREATE FUNCTION clearq_schedule_tag_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM schedules s WHERE {_PG_MATCHING}
    ORDER BY s.id FOR UPDATE OF s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO schedule_events (schedule_id, task_id, at)
    SELECT s.id, NEW.id, now() FROM schedules s WHERE {_PG_MATCHING};
    UPDATE queue_entries e SET held_by = NULL
    FROM schedules s
    WHERE e.schedule_id = s.id AND e.held_by = 'trigger' AND {_PG_MATCHING};
    PERFORM pg_notify('clearq_enqueue', 'trigger');
    RETURN NULL;
END $$
"""
_PG_TRIGGER = (
    "CREATE TRIGGER schedule_tag_triggers_on_update AFTER UPDATE OF tags ON tasks "
    "FOR EACH ROW WHEN (NEW.tags::text IS DISTINCT FROM OLD.tags::text) "
    "EXECUTE FUNCTION clearq_schedule_tag_trigger()"
)
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
_SQLITE_MATCHING = (
    "s.on_tag IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM json_each(NEW.tags) WHERE value = s.on_tag) "
    "AND NOT EXISTS (SELECT 1 FROM json_each(OLD.tags) WHERE value = s.on_tag)" + _OTHERS
)
_SQLITE_TRIGGER = f"""
CREATE TRIGGER schedule_tag_triggers_on_update AFTER UPDATE OF tags ON tasks
WHEN NEW.tags IS NOT OLD.tags
BEGIN
    INSERT INTO schedule_events (schedule_id, task_id, at)
    SELECT s.id, NEW.id, {_SQLITE_NOW} FROM schedules s WHERE {_SQLITE_MATCHING};
    UPDATE queue_entries SET held_by = NULL
    WHERE held_by = 'trigger'
      AND schedule_id IN (SELECT s.id FROM schedules s WHERE {_SQLITE_MATCHING});
END
"""


def upgrade() -> None:
    op.add_column("schedules", sa.Column("on_tag", sa.String(length=255), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS schedule_tag_triggers_on_update ON tasks")
        op.execute("DROP FUNCTION IF EXISTS clearq_schedule_tag_trigger()")
    else:
        op.execute("DROP TRIGGER IF EXISTS schedule_tag_triggers_on_update")
    op.drop_column("schedules", "on_tag")
