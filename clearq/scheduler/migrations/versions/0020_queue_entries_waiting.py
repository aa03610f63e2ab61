"""queue_entries.waiting: an entry whose parents have not finished is out of the claim's path

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01

- queue_entries.waiting: true while a parent of the entry's task has not completed (or
  ended otherwise on an edge that continues on failure), the condition the claim used to
  check with a NOT EXISTS over the dependencies. Kept by the database itself, in the
  transaction of every change that can move it, whichever path makes it: an entry's
  insert, an edge's insert or delete, and a change of a parent's status (a task with
  ``has_children``, which an edge's insert sets on its parent). On PostgreSQL the
  entry's and the edge's triggers lock the parents (FOR SHARE) before they read them, so
  a parent finishing at the same moment either waits for the enqueue to commit (and
  then sees the entry) or is seen finished;
- ix_queue_entries_ready: the claim-order index of the entries the claim may take (no
  outside hold, not waiting), so the claim's plan does not depend on what the planner
  guesses of the dependencies (a queue filled faster than autoanalyze had its whole
  eligible set sorted on every claim).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# Whether the entry of task {child} waits: a parent not done on its edge.
_WAITS = """EXISTS (
    SELECT 1 FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
    WHERE d.child_id = {child} AND p.status <> 'completed'
      AND NOT (d.continue_on_failure AND p.status IN ('failed', 'stopped', 'skipped'))
)"""
_PG_LOCK_PARENTS = (
    "PERFORM 1 FROM tasks p WHERE p.id IN "
    "(SELECT d.parent_id FROM task_dependencies d WHERE d.child_id = {child}) FOR SHARE OF p;"
)
_PG_RECHECK = """UPDATE queue_entries e SET waiting = w.waits
    FROM (SELECT e.id, {waits} AS waits FROM queue_entries e WHERE e.task_id {which}) w
    WHERE e.id = w.id AND e.waiting IS DISTINCT FROM w.waits;"""
_PG_FUNCTIONS = (
    f"""
CREATE FUNCTION clearq_entry_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_PG_LOCK_PARENTS.format(child="NEW.task_id")}
    NEW.waiting := {_WAITS.format(child="NEW.task_id")};
    RETURN NEW;
END $$
""",
    f"""
CREATE FUNCTION clearq_children_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
        _PG_RECHECK.format(
            waits=_WAITS.format(child="e.task_id"),
            which="IN (SELECT c.child_id FROM task_dependencies c WHERE c.parent_id = NEW.id)",
        )
    }
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION clearq_edge_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    child uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        child := OLD.child_id;
    ELSE
        child := NEW.child_id;
        UPDATE tasks SET has_children = true WHERE id = NEW.parent_id AND NOT has_children;
        {_PG_LOCK_PARENTS.format(child="child")}
    END IF;
    {_PG_RECHECK.format(waits=_WAITS.format(child="e.task_id"), which="= child")}
    RETURN NULL;
END $$
""",
)
_PG_TRIGGERS = (
    "CREATE TRIGGER queue_entries_waiting BEFORE INSERT ON queue_entries "
    "FOR EACH ROW EXECUTE FUNCTION clearq_entry_waiting()",
    "CREATE TRIGGER queue_entries_waiting_on_parent AFTER UPDATE OF status ON tasks "
    "FOR EACH ROW WHEN (NEW.has_children AND NEW.status IS DISTINCT FROM OLD.status) "
    "EXECUTE FUNCTION clearq_children_waiting()",
    "CREATE TRIGGER queue_entries_waiting_on_edge AFTER INSERT OR DELETE ON task_dependencies "
    "FOR EACH ROW EXECUTE FUNCTION clearq_edge_waiting()",
)
_SQLITE_RECHECK = (
    "UPDATE queue_entries SET waiting = "
    + _WAITS.format(child="queue_entries.task_id")
    + " WHERE task_id {which};"
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER queue_entries_waiting AFTER INSERT ON queue_entries BEGIN "
    + _SQLITE_RECHECK.format(which="= NEW.task_id")
    + " END",
    "CREATE TRIGGER queue_entries_waiting_on_parent AFTER UPDATE OF status ON tasks "
    "WHEN NEW.has_children AND NEW.status IS NOT OLD.status BEGIN "
    + _SQLITE_RECHECK.format(
        which="IN (SELECT c.child_id FROM task_dependencies c WHERE c.parent_id = NEW.id)"
    )
    + " END",
    "CREATE TRIGGER queue_entries_waiting_on_edge AFTER INSERT ON task_dependencies BEGIN "
    "UPDATE tasks SET has_children = 1 WHERE id = NEW.parent_id AND NOT has_children; "
    + _SQLITE_RECHECK.format(which="= NEW.child_id")
    + " END",
    "CREATE TRIGGER queue_entries_waiting_on_edge_delete AFTER DELETE ON task_dependencies "
    "BEGIN " + _SQLITE_RECHECK.format(which="= OLD.child_id") + " END",
)
_TRIGGER_NAMES = (
    ("queue_entries_waiting", "queue_entries"),
    ("queue_entries_waiting_on_parent", "tasks"),
    ("queue_entries_waiting_on_edge", "task_dependencies"),
    ("queue_entries_waiting_on_edge_delete", "task_dependencies"),
)
READY = "held_by IS NULL AND NOT waiting"
"""The ready entries' index predicate (``schema.queue_entries`` says the same)."""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Plain ADD COLUMN, not a batch operation (no table rebuild on SQLite).
    op.add_column(
        "queue_entries",
        sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute("UPDATE queue_entries SET waiting = " + _WAITS.format(child="queue_entries.task_id"))
    op.create_index(
        "ix_queue_entries_ready",
        "queue_entries",
        ["queue_id", sa.text("priority DESC"), "id"],
        postgresql_where=sa.text(READY),
        sqlite_where=sa.text(READY),
    )
    if postgres:
        for statement in (*_PG_FUNCTIONS, *_PG_TRIGGERS):
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        for function in ("clearq_entry_waiting", "clearq_children_waiting", "clearq_edge_waiting"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_index("ix_queue_entries_ready", table_name="queue_entries")
    op.drop_column("queue_entries", "waiting")
