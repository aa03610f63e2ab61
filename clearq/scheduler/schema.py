"""The tables of the store, for SQLAlchemy Core.

These definitions are the reference the migrations must reproduce (a test compares
them). Timestamps are written by the database's clock (see :func:`db_now`), never by an
agent's, so leases compare on one clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from clearq.scheduler.statements import clock

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigserial.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores fixed-width UTC text that sorts
    and compares correctly as text.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: clearq stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class db_now(FunctionElement[datetime]):  # named like the SQL function it stands for
    """The database's current time, optionally plus ``seconds`` (may be negative)."""

    type = UtcDateTime()
    inherit_cache = True
    name = "db_now"

    def __init__(self, seconds: float | sa.ColumnElement[Any] = 0.0) -> None:
        offset = seconds if isinstance(seconds, sa.ColumnElement) else sa.literal(float(seconds))
        super().__init__(offset)


@compiles(db_now, "postgresql")
def _pg_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return clock(True, compiler.process(element.clauses, **kw))


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return clock(False, compiler.process(element.clauses, **kw))


tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("project", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text(), nullable=False),
    sa.Column("script", sa.JSON(), nullable=False),
    sa.Column("env", sa.JSON(), nullable=False),
    sa.Column("container", sa.JSON(), nullable=False),
    sa.Column("parameters", sa.JSON(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("runtime", sa.JSON(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="SET NULL")),
    sa.Column("output_uri", sa.Text()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("queued_at", UtcDateTime()),
    sa.Column("started_at", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("queue_id", sa.Integer(), sa.ForeignKey("queues.id", ondelete="SET NULL")),
    sa.Column("worker", sa.String(255)),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("tries", sa.Integer(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("max_run_seconds", sa.Float()),
    sa.Column("lease_expires_at", UtcDateTime()),
    sa.Column("stop_requested_at", UtcDateTime()),
    sa.Column("exit_code", sa.Integer()),
    # Retries of the user's code failing (tries/max_attempts count lost infrastructure).
    sa.Column("max_retries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("retry_delay_seconds", sa.Float()),
    # Another task depends on this one: its finish wakes idle agents.
    sa.Column("has_children", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Variables the task's process gets besides the agent's allow-list (migration 0007).
    sa.Column("environment", sa.JSON()),
    # Ranks on as many agents (a gang, claimed all at once: clearq.scheduler.gangs).
    sa.Column("nodes", sa.Integer(), nullable=False, server_default="1"),
    # Lease renewals of the running attempt: SQLite's reaper watches it move (expiry.py).
    sa.Column("beats", sa.Integer(), nullable=False, server_default="0"),
    # Who made the task (migration 0012); NULL for tasks made before it was recorded.
    sa.Column("created_by", sa.Text()),
    # Archived: readable by id, left out of the default lists (migration 0015).
    sa.Column("archived_at", UtcDateTime()),
    sa.Index("ix_tasks_status_lease_expires_at", "status", "lease_expires_at"),
    sa.Index("ix_tasks_worker_status", "worker", "status"),
    # The ON DELETE SET NULL of parent_id probes it for every deleted task (migration 0011).
    sa.Index("ix_tasks_parent_id", "parent_id"),
    sa.Index("ix_tasks_created_by", "created_by"),
    sa.Index("ix_tasks_archived_at", "archived_at"),
)

queues = sa.Table(
    "queues",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("gpus", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("max_running", sa.Integer()),
    # What the queue is for, for people (migration 0017); NULL: none given.
    sa.Column("description", sa.Text()),
    sa.Column("tags", sa.JSON()),
    # Fair share (migration 0018): 'user' or 'project', and the half-life of past usage.
    sa.Column("fair_share", sa.String(16)),
    sa.Column("fair_half_life", sa.Float()),
)

# Limits on what one user's (kind 'user', name = tasks.created_by) or one project's
# running tasks hold at once, read by the claim (migration 0014).
quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("max_running", sa.Integer()),
    sa.Column("max_gpus", sa.Integer()),
)

# Narrow on purpose: the claim reads and deletes only these rows.
READY = "held_by IS NULL AND NOT waiting"
"""The entries a claim may take: no outside launcher holds them, no parent keeps them
waiting (the predicate of ``ix_queue_entries_ready``, the claim's path)."""

queue_entries = sa.Table(
    "queue_entries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "queue_id", sa.Integer(), sa.ForeignKey("queues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "task_id",
        sa.Uuid(),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("enqueued_at", UtcDateTime(), nullable=False),
    sa.Column("not_before", UtcDateTime()),
    # An outside launcher's hold (``slurm:<job id>``): the agents' claim passes it over.
    sa.Column("held_by", sa.String(255)),
    # The schedule whose next run this entry is (migration 0016): claiming it fires the
    # schedule (clearq.scheduler.schedules). No foreign key: a schedule removed leaves a
    # plain entry.
    sa.Column("schedule_id", sa.Integer()),
    # Whose turn it is in a fair-share queue (its task's user or project; else NULL).
    sa.Column("owner", sa.Text()),
    # True while a parent of its task has not finished (migration 0020: kept by triggers,
    # in the transaction of every change of an entry, an edge or a parent's status).
    sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Index("ix_queue_entries_claim_order", "queue_id", sa.text("priority DESC"), "id"),
    # The claim's path: the entries it may take, in claim order (migration 0020).
    sa.Index(
        "ix_queue_entries_ready",
        "queue_id",
        sa.text("priority DESC"),
        "id",
        postgresql_where=sa.text(READY),
        sqlite_where=sa.text(READY),
    ),
    sa.Index("ix_queue_entries_schedule_id", "schedule_id"),
    sa.Index("ix_queue_entries_fair_order", "queue_id", "owner", sa.text("priority DESC"), "id"),
)

# Schedules and triggers (migration 0016): each keeps one waiting clone of ``task_id`` in
# its queue (the entry with its ``schedule_id``); claiming it makes the next.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "queue_id", sa.Integer(), sa.ForeignKey("queues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("every_seconds", sa.Float()),
    sa.Column("cron", sa.String(255)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("on_status", sa.String(16)),
    sa.Column("on_project", sa.String(255)),
    # A trigger on a tag (migration 0019): it fires when a task gains it.
    sa.Column("on_tag", sa.String(255)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("created_by", sa.Text()),
    sa.Column("fired", sa.Integer(), nullable=False),
    sa.Column("last_fired_at", UtcDateTime()),
    sa.Column("last_task_id", sa.Uuid()),
    sa.Index("ix_schedules_on_status", "on_status"),
    # Deleting a task probes it for the schedules cloning that task (ON DELETE CASCADE).
    sa.Index("ix_schedules_task_id", "task_id"),
)

# A trigger's events not yet run: written by the database itself (a trigger on tasks'
# status, migration 0016) in the transaction of the status change.
schedule_events = sa.Table(
    "schedule_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "schedule_id",
        sa.Integer(),
        sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_schedule_events_schedule_id_id", "schedule_id", "id"),
    sa.Index("ix_schedule_events_task_id", "task_id"),
)

# Each owner's decayed usage of a fair-share queue, as ln(sum of charge * 2^(t / half-life))
# over its finished runs (charge: run seconds times GPUs, at least 1): comparing two
# scores compares their usage decayed to any common time. NULL: none yet. One row per
# owner with entries, so that the claim probes each owner's first entry (migration 0018).
fair_usage = sa.Table(
    "fair_usage",
    metadata,
    sa.Column(
        "queue_id", sa.Integer(), sa.ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("owner", sa.Text(), primary_key=True),
    sa.Column("score", sa.Float()),
)

# A child is claimable once every parent completed (unless the edge continues on failure).
task_dependencies = sa.Table(
    "task_dependencies",
    metadata,
    sa.Column(
        "child_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "parent_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("continue_on_failure", sa.Boolean(), nullable=False),
    sa.Index("ix_task_dependencies_parent_id", "parent_id"),
)

# Written by the database itself (triggers, migration 0002) on every change of a task's
# status or attempt, whichever path made it. No foreign key (migration 0023): its check
# was a third of the write's server cost; a trigger on tasks' deletes removes the events.
task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Uuid(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("worker", sa.String(255)),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Index("ix_task_events_task_id_id", "task_id", "id"),
    sa.Index("ix_task_events_at", "at"),
)

UNKEYED_TASK_COLUMNS: tuple[sa.Column[Any], ...] = (task_events.c.task_id,)
"""Columns naming a task without a foreign key: a delete trigger on ``tasks`` removes
their rows (migration 0023)."""

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer()),
    sa.Column("queues", sa.JSON(), nullable=False),
    sa.Column("gpus", sa.JSON(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    # An operator's drain or pause (migration 0013), read by the agent before it claims.
    sa.Column("command", sa.String(16)),
    # Its claim windows as the agent published them (migration 0022; NULL: none).
    sa.Column("windows", sa.JSON()),
)

worker_metrics = sa.Table(
    "worker_metrics",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("worker_id", sa.String(255), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("cpu_percent", sa.Float()),
    sa.Column("memory_used", sa.BigInteger()),
    sa.Column("memory_total", sa.BigInteger()),
    sa.Column("disk_free", sa.BigInteger()),
    sa.Column("disk_read_bps", sa.Float()),
    sa.Column("disk_write_bps", sa.Float()),
    sa.Column("net_rx_bps", sa.Float()),
    sa.Column("net_tx_bps", sa.Float()),
    sa.Column("gpus", sa.JSON(), nullable=False),
    sa.Index("ix_worker_metrics_worker_id_at", "worker_id", "at"),
)

task_logs = sa.Table(
    "task_logs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("stream", sa.String(16), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Index("ix_task_logs_task_id_id", "task_id", "id"),
)

task_scalars = sa.Table(
    "task_scalars",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("series", sa.String(255), nullable=False),
    sa.Column("iteration", sa.BigInteger(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_task_scalars_task_id_title_series", "task_id", "title", "series"),
)

# One row per (task, title, series): O(1) reads of an objective's last/min/max.
task_scalar_summary = sa.Table(
    "task_scalar_summary",
    metadata,
    sa.Column(
        "task_id",
        sa.Uuid(),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("title", sa.String(255), primary_key=True),
    sa.Column("series", sa.String(255), primary_key=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("last", sa.Float(), nullable=False),
    sa.Column("min", sa.Float(), nullable=False),
    sa.Column("max", sa.Float(), nullable=False),
    sa.Column("last_iteration", sa.BigInteger(), nullable=False),
)

task_artifacts = sa.Table(
    "task_artifacts",
    metadata,
    sa.Column(
        "task_id",
        sa.Uuid(),
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("uri", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger()),
    sa.Column("sha256", sa.String(64)),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Plots a run reported (plotly figures as JSON: the page draws them as they are).
task_plots = sa.Table(
    "task_plots",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("series", sa.String(255), nullable=False),
    sa.Column("iteration", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("figure", sa.JSON(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_task_plots_task_id_title_series", "task_id", "title", "series"),
)

# Debug samples (images, audio, video, HTML, any file): the file lives under the task's
# output location, the row says where and what it is. A sample slot overwritten by a
# newer iteration (max_image_history) keeps one row: the newest.
task_samples = sa.Table(
    "task_samples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("series", sa.String(255), nullable=False),
    sa.Column("iteration", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("uri", sa.Text(), nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger()),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_task_samples_task_id_title_series", "task_id", "title", "series"),
)

# Models a task's run stored (OutputModel): the weights' file under the task's output
# location, what they are, and the labels and configuration they were trained with.
task_models = sa.Table(
    "task_models",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("framework", sa.String(64), nullable=False),
    sa.Column("uri", sa.Text()),
    sa.Column("size", sa.BigInteger()),
    sa.Column("sha256", sa.String(64)),
    sa.Column("labels", sa.JSON(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("iteration", sa.BigInteger()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_task_models_task_id", "task_id"),
    sa.Index("ix_task_models_name", "name"),
)

# Fleet-wide chores (migration 0021): the agent whose UPDATE moves ``next_at`` past now
# runs the chore (retention, clearq.scheduler.cleanup.Cleanup.take_turn); the others skip.
chores = sa.Table(
    "chores",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("next_at", UtcDateTime()),
    sa.Column("holder", sa.String(255)),
)

# The ranks of a gang task (nodes > 1): agents join while it forms, for its next attempt;
# the last to join starts it. Each rank's agent renews its own lease while it waits and
# while it runs, so that a lost rank is seen by the others.
gang_members = sa.Table(
    "gang_members",
    metadata,
    sa.Column(
        "task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("rank", sa.Integer(), primary_key=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("worker", sa.String(255), nullable=False),
    sa.Column("address", sa.String(255), nullable=False),
    sa.Column("port", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("lease_expires_at", UtcDateTime(), nullable=False),
)
