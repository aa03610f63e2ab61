"""task events, dependencies, retries, queue caps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

- task_events: one row per change of a task's status or attempt, written by triggers
  (so every path that changes a task is recorded: the claim, a finish, the reaper, a
  script's own run);
- task_dependencies: a child waits for its parents (the claim checks them);
- tasks.max_retries / retries / retry_delay_seconds: retries of the user's code;
- queue_entries.not_before: a retry waits out its delay in the queue;
- queues.max_running: a cap on a queue's running tasks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION clearq_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
            OR NEW.attempt IS DISTINCT FROM OLD.attempt THEN
        INSERT INTO task_events (task_id, at, status, attempt, worker, reason)
        VALUES (NEW.id, clock_timestamp(), NEW.status, NEW.attempt, NEW.worker,
                NEW.status_reason);
    END IF;
    RETURN NULL;
END $$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER task_events_on_insert AFTER INSERT ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION clearq_task_event()",
    "CREATE TRIGGER task_events_on_update AFTER UPDATE OF status, attempt ON tasks "
    "FOR EACH ROW EXECUTE FUNCTION clearq_task_event()",
)
# The text layout of UtcDateTime on SQLite (schema.db_now).
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
_SQLITE_INSERT_EVENT = (
    "INSERT INTO task_events (task_id, at, status, attempt, worker, reason) "
    f"VALUES (NEW.id, {_SQLITE_NOW}, NEW.status, NEW.attempt, NEW.worker, NEW.status_reason);"
)
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER task_events_on_insert AFTER INSERT ON tasks BEGIN {_SQLITE_INSERT_EVENT} END",
    "CREATE TRIGGER task_events_on_update AFTER UPDATE OF status, attempt ON tasks "
    "WHEN NEW.status IS NOT OLD.status OR NEW.attempt IS NOT OLD.attempt "
    f"BEGIN {_SQLITE_INSERT_EVENT} END",
)


def upgrade() -> None:
    op.create_table(
        "task_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_events_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_events")),
    )
    op.create_index("ix_task_events_task_id_id", "task_events", ["task_id", "id"])
    op.create_table(
        "task_dependencies",
        sa.Column("child_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("continue_on_failure", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["tasks.id"],
            name=op.f("fk_task_dependencies_child_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["tasks.id"],
            name=op.f("fk_task_dependencies_parent_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_task_dependencies")),
    )
    op.create_index("ix_task_dependencies_parent_id", "task_dependencies", ["parent_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("max_retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retry_delay_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("queue_entries") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("max_running", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    on = " ON tasks" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"DROP TRIGGER IF EXISTS task_events_on_update{on}")
    op.execute(f"DROP TRIGGER IF EXISTS task_events_on_insert{on}")
    if on:
        op.execute("DROP FUNCTION IF EXISTS clearq_task_event()")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("max_running")
    with op.batch_alter_table("queue_entries") as batch:
        batch.drop_column("not_before")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("retry_delay_seconds")
        batch.drop_column("retries")
        batch.drop_column("max_retries")
    op.drop_index("ix_task_dependencies_parent_id", table_name="task_dependencies")
    op.drop_table("task_dependencies")
    op.drop_index("ix_task_events_task_id_id", table_name="task_events")
    op.drop_table("task_events")
