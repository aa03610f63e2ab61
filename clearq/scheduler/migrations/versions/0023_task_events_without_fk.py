"""task_events without a foreign key: its rows go with their task by a delete trigger

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01

Every status change writes a ``task_events`` row (migration 0002's triggers). Its foreign
key to ``tasks`` made each of those inserts run a referential check (a query through SPI,
locking the task's row FOR KEY SHARE) that nothing needs: the row is written by a trigger
on that very task row, or by ``history.mark_preempted`` under the attempt's row lock. What
the key did that matters, removing a deleted task's history, is now a trigger on
``tasks``' deletes: on PostgreSQL one set-based DELETE per statement (a transition table;
the cascade ran one DELETE per deleted task), on SQLite one per row, as its cascade did.
Every way of deleting tasks (the cleanup, a schedule's clone, plain SQL) keeps no orphan
event (TRUNCATE fires no delete trigger).

``benchmarks/history_write.py`` (server instructions under callgrind, 2026-12-01): the
history's cost per status change 133k -> 91k instructions in a claim, 129k -> 82k in a
finish, 116k -> 72k per task of a batch finish; its rows' removal per deleted task 46k ->
11k. The btree on ``at`` stays (8k a row; BRIN measured dearer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

FK = "fk_task_events_task_id_tasks"
# EXECUTE: planned for each statement's own count of deleted tasks. A cached plan would
# keep the join the first delete of the session chose (a sequential scan of the whole
# history for a later single task, after a first large delete).
PG_DELETE_FUNCTION = """
CREATE FUNCTION clearq_task_events_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DELETE FROM task_events e USING gone g WHERE e.task_id = g.id';
    RETURN NULL;
END $$
"""
PG_DELETE_TRIGGER = (
    "CREATE TRIGGER task_events_on_delete AFTER DELETE ON tasks "
    "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
    "EXECUTE FUNCTION clearq_task_events_gone()"
)
_SQLITE_TRIGGER = (
    "CREATE TRIGGER task_events_on_delete AFTER DELETE ON tasks "
    "BEGIN DELETE FROM task_events WHERE task_id = OLD.id; END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(FK, "task_events", type_="foreignkey")
        op.execute(PG_DELETE_FUNCTION)
        op.execute(PG_DELETE_TRIGGER)
        return
    with (
        _sqlite_triggers_naming_task_events(),
        op.batch_alter_table("task_events", recreate="always") as batch,
    ):
        batch.drop_constraint(FK, type_="foreignkey")
    op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER IF EXISTS task_events_on_delete" + (" ON tasks" if postgres else ""))
    op.execute("DELETE FROM task_events WHERE task_id NOT IN (SELECT id FROM tasks)")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS clearq_task_events_gone()")
        op.create_foreign_key(FK, "task_events", "tasks", ["task_id"], ["id"], ondelete="CASCADE")
        return
    with (
        _sqlite_triggers_naming_task_events(),
        op.batch_alter_table("task_events", recreate="always") as batch,
    ):
        batch.create_foreign_key(FK, "tasks", ["task_id"], ["id"], ondelete="CASCADE")


@contextlib.contextmanager
def _sqlite_triggers_naming_task_events() -> Iterator[None]:
    """Drop the triggers whose bodies name ``task_events`` for the block, then restore them.

    A batch operation rebuilds the table under a temporary name and renames it back, and
    SQLite refuses that rename while a trigger (here: the history triggers on ``tasks``)
    names a table that is, for that moment, missing.
    """
    bind = op.get_bind()
    saved = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
        "AND tbl_name <> 'task_events' AND sql LIKE '%task_events%' ORDER BY name"
    ).all()
    for name, _ in saved:
        bind.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in saved:
        bind.exec_driver_sql(sql)
