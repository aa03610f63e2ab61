"""Every statement of the fenced writes, written once, with the dialects' differences as holes.

A statement is plain SQL with ``:name`` parameters and ``{hole}`` fields that
:func:`render` fills in for the dialect: the database's clock (``{now}``, and
``{after_X}`` for now plus the ``:X`` seconds parameter, as ``schema.db_now``), JSON
parameters (``{json_X}``), row locks and the fence predicate itself (``{fence}``). The
result is cached per dialect and in the driver's own parameter style, so the Store (over
SQLAlchemy's connection) and a run (over the bare DB-API driver) send the very same text.

Standard library only: a training script imports this on its way to its first line.
``tests/integration/test_statements.py`` checks every column named here against
``schema.py``. The operations that use these statements are in ``fenced.py``.
"""

from __future__ import annotations

import math
import re
import sqlite3
from functools import cache

from clearq.valueclass import value_class


@value_class
class Statement:
    """One named piece of SQL (a template until :func:`render` fills its holes)."""

    name: str
    template: str


FENCE = (
    "{task}.id = {value}task_id AND {task}.attempt = {value}attempt "
    "AND {task}.status = 'running' AND {task}.worker {same} {value}worker"
)
"""The fence predicate: the row is still this attempt's, running, held by its worker.

A run started by hand has no worker (NULL), hence the null-safe comparison.
"""

_TASK_COLUMNS = (
    "id, project, name, type, status, status_reason, script, env, container, parameters, "
    "tags, runtime, comment, parent_id, output_uri, created_at, updated_at, started_at, "
    "attempt, tries, max_attempts, max_run_seconds, max_retries, retries, "
    "retry_delay_seconds, lease_expires_at"
)

# A parameter used twice must have one type on PostgreSQL: cast where it is not a column.
_IS_RUNNING = "CAST(:status AS varchar(16)) = 'running'"
_NOT_BEFORE = "CASE WHEN CAST(:delay AS double precision) > 0 THEN {after_delay} END"
GANG_HOLD = "gang"
"""The holder of a gang task's entry: the agents' claim passes it over, ranks join it."""
TRIGGER_HOLD = "trigger"
"""The holder of a trigger's waiting entry until an event releases it (migration 0016)."""
_GANG_HOLD = f"(SELECT CASE WHEN nodes > 1 THEN '{GANG_HOLD}' END FROM tasks WHERE id = :task_id)"

INSERT_TASK = Statement(
    "insert_task",
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES (:id, :project, :name, :type, :status, '', "
    "{json_script}, {json_env}, {json_container}, {json_parameters}, {json_tags}, "
    "{json_runtime}, :comment, :parent_id, :output_uri, {now}, {now}, "
    "CASE WHEN " + _IS_RUNNING + " THEN {now} END, :attempt, :attempt, :max_attempts, "
    ":max_run_seconds, :max_retries, 0, :retry_delay_seconds, "
    "CASE WHEN " + _IS_RUNNING + " THEN {after_lease} END)",
)
"""A new task: a draft (created, attempt 0) or a run started by hand (running, attempt 1)."""

HOLD = Statement("hold", "SELECT tasks.id FROM tasks WHERE {fence}{share}")
"""Check a fence and keep it (a share lock) until the transaction ends."""

NOW_IS = Statement("now_is", "SELECT status, attempt, worker FROM tasks WHERE id = :task_id")
"""What a task is now: the message of a lost fence."""

READ_RUN = Statement(
    "read_run",
    "SELECT project, name, status, attempt, worker, parameters, output_uri FROM tasks "
    "WHERE id = :task_id",
)
"""The facts a run needs to attach to its task."""

READ_PARAMETERS = Statement("read_parameters", "SELECT parameters FROM tasks WHERE id = :task_id")
READ_RUNTIME = Statement("read_runtime", "SELECT runtime FROM tasks WHERE id = :task_id")

SET_PARAMETERS = Statement(
    "set_parameters",
    "UPDATE tasks SET parameters = {json_parameters}, updated_at = {now} WHERE id = :task_id",
)
SET_RUNTIME = Statement(
    "set_runtime",
    "UPDATE tasks SET runtime = {json_runtime}, updated_at = {now} WHERE id = :task_id",
)
SET_CODE = Statement(
    "set_code",
    "UPDATE tasks SET script = {json_script}, env = {json_env}, updated_at = {now} "
    "WHERE id = :task_id",
)
"""A run's captured code and packages, written once its capture is done (``Task.init``)."""

INSERT_LOG = Statement(
    "insert_log",
    "INSERT INTO task_logs (task_id, attempt, at, stream, text) "
    "VALUES (:task_id, :attempt, {now}, :stream, :text)",
)
INSERT_SCALAR = Statement(
    "insert_scalar",
    "INSERT INTO task_scalars (task_id, attempt, title, series, iteration, value, at) "
    "VALUES (:task_id, :attempt, :title, :series, :iteration, :value, {now})",
)
UPSERT_SUMMARY = Statement(
    "upsert_summary",
    "INSERT INTO task_scalar_summary "
    "(task_id, title, series, attempt, last, min, max, last_iteration) "
    "VALUES (:task_id, :title, :series, :attempt, :last, :min, :max, :last_iteration) "
    "ON CONFLICT (task_id, title, series) DO UPDATE SET "
    "attempt = excluded.attempt, last = excluded.last, "
    "last_iteration = excluded.last_iteration, "
    # A newer attempt starts the summary afresh; the same attempt folds in.
    "min = CASE WHEN task_scalar_summary.attempt < excluded.attempt THEN excluded.min "
    "ELSE {least}(task_scalar_summary.min, excluded.min) END, "
    "max = CASE WHEN task_scalar_summary.attempt < excluded.attempt THEN excluded.max "
    "ELSE {greatest}(task_scalar_summary.max, excluded.max) END",
)

INSERT_PLOT = Statement(
    "insert_plot",
    "INSERT INTO task_plots (task_id, attempt, title, series, iteration, kind, figure, at) "
    "VALUES (:task_id, :attempt, :title, :series, :iteration, :kind, {json_figure}, {now})",
)
FORGET_SAMPLE = Statement(
    "forget_sample", "DELETE FROM task_samples WHERE task_id = :task_id AND uri = :uri"
)
"""A sample slot rewritten by a newer iteration (max_image_history) keeps only its newest row."""
INSERT_SAMPLE = Statement(
    "insert_sample",
    "INSERT INTO task_samples "
    "(task_id, attempt, title, series, iteration, kind, uri, content_type, size, at) "
    "VALUES (:task_id, :attempt, :title, :series, :iteration, :kind, :uri, :content_type, "
    ":size, {now})",
)

RENEW = Statement(
    "renew",
    "UPDATE tasks SET lease_expires_at = {after_lease}, beats = beats + 1 WHERE {fence} "
    "RETURNING tasks.stop_requested_at, tasks.status_reason, {over_time}",
)
"""Extend one attempt's lease; say whether a stop was asked and if it ran past its limit.

``beats`` counts the renewals: SQLite's reaper watches it move (``expiry.py``).

No ``IS [NOT] NULL`` in a RETURNING list: SQLite 3.40 answers it wrongly on ``tasks``
(whose history triggers fire on update); NULL-propagating arithmetic under COALESCE is fine.
"""

# In a RETURNING list: the task's queue shares by user or project (its run is charged).
_FAIR_QUEUE = "(SELECT fq.fair_share FROM queues fq WHERE fq.id = tasks.queue_id)"

FINISH = Statement(
    "finish",
    "UPDATE tasks SET status = :status, exit_code = :exit_code, status_reason = :reason, "
    "finished_at = {now}, updated_at = {now}, lease_expires_at = NULL WHERE {fence} "
    "RETURNING tasks.has_children, " + _FAIR_QUEUE,
)
"""End an attempt (one statement: on PostgreSQL its own transaction, no BEGIN/COMMIT)."""

FINISH_MANY_PG = Statement(
    "finish_many_pg",
    "WITH v(task_id, attempt, worker, status, exit_code, reason) AS (VALUES {rows}) "
    "UPDATE tasks SET status = v.status, exit_code = v.exit_code, status_reason = v.reason, "
    "finished_at = {now}, updated_at = {now}, lease_expires_at = NULL "
    "FROM v WHERE {fence_v} RETURNING tasks.id, tasks.has_children, " + _FAIR_QUEUE,
)
"""End many attempts in one PostgreSQL statement; ``{rows}`` is :func:`finish_many_rows`."""

LOCK_FOR_RETRY = Statement(
    "lock_for_retry",
    "SELECT queue_id, max_retries, retries, retry_delay_seconds, attempt "
    "FROM tasks WHERE {fence}{for_update}",
)
RETRY = Statement(
    "retry",
    "UPDATE tasks SET status = 'queued', status_reason = :reason, exit_code = :exit_code, "
    "retries = retries + 1, tries = tries - 1, worker = NULL, lease_expires_at = NULL, "
    "stop_requested_at = NULL, queued_at = {now}, updated_at = {now} WHERE id = :task_id",
)
"""Send a failed attempt back to its queue (its entry is inserted beside it)."""

FRONT_LOCK = Statement("front_lock", "SELECT pg_advisory_xact_lock(:key)")
FRONT_OF = Statement(
    "front_of",
    "SELECT (SELECT min(id) FROM queue_entries), "
    "(SELECT max(priority) FROM queue_entries WHERE queue_id = :queue_id)",
)
# Whose turn an entry is in a fair-share queue (NULL in any other queue).
_OWNER = (
    "(SELECT CASE oq.fair_share WHEN 'user' THEN COALESCE(ot.created_by, '') "
    "WHEN 'project' THEN ot.project END FROM queues oq, tasks ot "
    "WHERE oq.id = :queue_id AND ot.id = :task_id)"
)
INSERT_ENTRY = Statement(
    "insert_entry",
    "INSERT INTO queue_entries (queue_id, task_id, priority, enqueued_at, not_before, held_by, "
    "owner) VALUES (:queue_id, :task_id, :priority, {now}, "
    + _NOT_BEFORE
    + ", "
    + _GANG_HOLD
    + ", "
    + _OWNER
    + ") RETURNING owner",
)
INSERT_ENTRY_AT = Statement(
    "insert_entry_at",
    "INSERT INTO queue_entries (id, queue_id, task_id, priority, enqueued_at, not_before, "
    "held_by, owner) VALUES (:id, :queue_id, :task_id, :priority, {now}, "
    + _NOT_BEFORE
    + ", "
    + _GANG_HOLD
    + ", "
    + _OWNER
    + ") RETURNING owner",
)
"""An entry with its id chosen (the front of the queue: below every other id)."""

ADD_OWNER = Statement(
    "add_owner",
    "INSERT INTO fair_usage (queue_id, owner, score) VALUES (:queue_id, :owner, NULL) "
    "ON CONFLICT (queue_id, owner) DO NOTHING",
)
"""Make an owner of a fair-share queue known to the claim (with no usage yet)."""

CHARGE = Statement(
    "charge",
    "INSERT INTO fair_usage (queue_id, owner, score) "
    "SELECT q.id, CASE q.fair_share WHEN 'user' THEN COALESCE(t.created_by, '') "
    "ELSE t.project END, "
    "ln(CASE WHEN q.gpus > 0 THEN q.gpus ELSE 1 END * {greatest}({run_seconds}, 0.001)) "
    "+ {epoch_now} * 0.6931471805599453 / q.fair_half_life "
    "FROM tasks t JOIN queues q ON q.id = t.queue_id "
    "WHERE t.id = :task_id AND q.fair_share IS NOT NULL AND t.started_at IS NOT NULL "
    "ON CONFLICT (queue_id, owner) DO UPDATE SET score = CASE "
    "WHEN fair_usage.score IS NULL THEN excluded.score "
    "ELSE {greatest}(fair_usage.score, excluded.score) "
    "+ ln(1 + exp(-abs(fair_usage.score - excluded.score))) END",
)
"""Add a run's usage to its owner's in a fair-share queue (none elsewhere).

The score is ln(sum of charge * 2^(t / half-life)), t on the database's clock, so adding
a charge is a log-sum-exp and no row is ever rescaled as time passes; the upsert is one
statement, so two runs ending at once both count."""

NOTIFY = Statement("notify", "SELECT pg_notify(:channel, :payload)")
"""A wake-up hint, sent when the transaction commits (PostgreSQL only)."""

BLOCKED = Statement(
    "blocked",
    "SELECT d.child_id, parent.id, parent.name, parent.status FROM task_dependencies d "
    "JOIN tasks parent ON parent.id = d.parent_id JOIN tasks child ON child.id = d.child_id "
    "WHERE child.status = 'queued' AND parent.status IN ('failed', 'stopped', 'skipped') "
    "AND NOT d.continue_on_failure ORDER BY d.child_id, parent.id{lock_children}",
)
"""Queued tasks whose parent gave up, on an edge that does not continue on failure."""
DROP_ENTRY = Statement("drop_entry", "DELETE FROM queue_entries WHERE task_id = :task_id")
SKIP = Statement(
    "skip",
    "UPDATE tasks SET status = 'skipped', status_reason = :reason, finished_at = {now}, "
    "updated_at = {now} WHERE id = :task_id AND status = 'queued'",
)

REVISION = Statement("revision", "SELECT version_num FROM alembic_version")

ALL: tuple[Statement, ...] = tuple(v for v in tuple(globals().values()) if isinstance(v, Statement))
"""Every statement above (the schema test walks them)."""


def finish_many_rows(count: int) -> str:
    """The VALUES rows of :data:`FINISH_MANY_PG` for ``count`` results (``:task_id0`` ...)."""
    return ", ".join(
        f"(CAST(:task_id{i} AS uuid), CAST(:attempt{i} AS integer), CAST(:worker{i} AS varchar), "
        f":status{i}, CAST(:exit_code{i} AS integer), :reason{i})"
        for i in range(count)
    )


def render(statement: Statement, postgres: bool, **extra: str) -> str:
    """The statement's SQL for the dialect, in the driver's parameter style.

    ``extra`` fills statement-specific holes (``rows`` of :data:`FINISH_MANY_PG`); only
    statements without them are cached.
    """
    if extra:
        return _render(statement.template, postgres, tuple(sorted(extra.items())))
    return _cached(statement.template, postgres)


@cache
def _cached(template: str, postgres: bool) -> str:
    return _render(template, postgres, ())


def _render(template: str, postgres: bool, extra: tuple[tuple[str, str], ...]) -> str:
    holes = _Holes(postgres)
    holes.update(extra)
    sql = template.format_map(holes)
    # Holes may hold holes ({fence} names {same}): fill until nothing is left.
    while "{" in sql:
        sql = sql.format_map(holes)
    return _NAMED.sub(r"%(\1)s", sql) if postgres else sql


_NAMED = re.compile(r"(?<![:\w]):([a-z_0-9]+)")


class _Holes(dict[str, str]):
    """The dialect's SQL for each ``{hole}``."""

    def __init__(self, postgres: bool) -> None:
        super().__init__()
        self._pg = postgres

    def __missing__(self, key: str) -> str:
        if key.startswith("json_"):
            return f"CAST(:{key[5:]} AS json)" if self._pg else f":{key[5:]}"
        if key.startswith("after_"):
            return _PG_AFTER.format(p=key[6:]) if self._pg else _sqlite_now(f":{key[6:]}")
        return (_PG if self._pg else _SQLITE)[key]


def clock(postgres: bool, offset: str) -> str:
    """The database's clock plus ``offset`` (SQL for a number of seconds), on the dialect.

    The one definition of it: these statements' ``{now}`` / ``{after_X}`` holes and
    ``schema.db_now`` (the SQLAlchemy statements' clock) both render it.
    """
    if postgres:
        return f"(now() + make_interval(secs => {offset}))"
    return _sqlite_now(offset)


def _sqlite_now(offset: str) -> str:
    # The text layout SQLAlchemy writes for SQLite datetimes: microseconds, 6 digits.
    return f"strftime('%Y-%m-%d %H:%M:%f000', julianday('now') + ({offset}) / 86400.0)"


_PG_AFTER = clock(True, "CAST(:{p} AS double precision)")
_FENCE_HOLES = {
    "fence": FENCE.replace("{task}", "tasks").replace("{value}", ":"),
    "fence_v": FENCE.replace("{task}", "tasks").replace("{value}", "v."),
}
_PG = {
    **_FENCE_HOLES,
    "now": "now()",
    "same": "IS NOT DISTINCT FROM",
    "share": " FOR SHARE",
    "for_update": " FOR UPDATE",
    "lock_children": " FOR UPDATE OF child SKIP LOCKED",
    "least": "least",
    "greatest": "greatest",
    "run_seconds": "CAST(extract(epoch FROM now() - t.started_at) AS double precision)",
    "epoch_now": "CAST(extract(epoch FROM now()) AS double precision)",
    "over_time": (
        "COALESCE(now() - tasks.started_at > make_interval(secs => tasks.max_run_seconds), false)"
    ),
}
_SQLITE = {
    **_FENCE_HOLES,
    "now": _sqlite_now("0"),
    "same": "IS",
    "share": "",
    "for_update": "",
    "lock_children": "",
    "least": "min",
    "greatest": "max",
    "run_seconds": "(julianday('now') - julianday(t.started_at)) * 86400.0",
    "epoch_now": "(julianday('now') - 2440587.5) * 86400.0",
    "over_time": (
        "COALESCE((julianday('now') - julianday(tasks.started_at)) * 86400.0 "
        "> tasks.max_run_seconds, 0)"
    ),
}


def sqlite_math(conn: sqlite3.Connection) -> None:
    """Give a sqlite3 connection ``ln`` and ``exp`` where its SQLite was built without them.

    :data:`CHARGE` uses them; SQLite has them only when compiled with its math functions.
    """
    try:
        conn.execute("SELECT ln(1), exp(0)").fetchall()
    except sqlite3.OperationalError as e:
        if "no such function" not in str(e):
            raise
        conn.create_function("ln", 1, math.log, deterministic=True)
        conn.create_function("exp", 1, math.exp, deterministic=True)
