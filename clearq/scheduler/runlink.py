"""One run's own path to the store, on the bare database driver.

A training script that calls ``Task.init`` writes a handful of things: the task it
captured (created running), its parameters, batches of console output and scalars, lease
renewals and how it ended. Those writes go through a :class:`RunLink`, which speaks to
the standard library's ``sqlite3`` or to psycopg directly: no SQLAlchemy and no pydantic,
because a script pays for every import before its first line of training runs
(``benchmarks/task_init_overhead.py``). Everything else (queues, the claim, reading
tasks back) goes through ``Store``.

Both write the same rows: ``schema.py`` is the reference for every column written here,
and ``tests/integration/test_runlink.py`` reads what a link wrote back through ``Store``.
Every write about the run is fenced like the store's (``rows.fence_clause``): once the
attempt is no longer this run's, nothing is written and LeaseLost says why.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from clearq.enums import RUN_END_STATUSES, TaskStatus
from clearq.errors import ConfigError, InvalidInput, LeaseLost, NotFound, SchemaError, StoreError
from clearq.scheduler import runlink_results as results
from clearq.scheduler.revision import SCHEMA_REVISION
from clearq.scheduler.runlink_results import PlotRow, SampleRow

SQLITE_BUSY_TIMEOUT_S = 30.0
LOG_STREAMS = frozenset({"stdout", "stderr", "agent"})

Point = tuple[str, str, int, float]
"""A reported scalar: (title, series, iteration, value)."""


@dataclass(frozen=True)
class RunFence:
    """The attempt a run owns: every write names it (``models.Fence``, without pydantic)."""

    task_id: uuid.UUID
    attempt: int
    worker: str | None = None


@dataclass(frozen=True)
class Beat:
    """What a lease renewal found: still held, and whether a stop was asked for."""

    held: bool
    stop_requested: bool


@dataclass(frozen=True)
class RunTask:
    """The few facts of a task a run needs to attach to it."""

    id: uuid.UUID
    project: str
    name: str
    status: TaskStatus
    attempt: int
    worker: str | None
    parameters: dict[str, str]
    output_uri: str | None = None


def summarise(points: Iterable[Point]) -> dict[tuple[str, str], dict[str, Any]]:
    """Fold points into last/min/max/last_iteration per (title, series), in report order."""
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for title, series, iteration, value in points:
        s = summary.get((title, series))
        if s is None:
            summary[(title, series)] = {
                "last": value,
                "min": value,
                "max": value,
                "last_iteration": iteration,
            }
            continue
        s.update(last=value, last_iteration=iteration)
        s["min"] = min(s["min"], value)
        s["max"] = max(s["max"], value)
    return summary


def lost_message(fence_task: uuid.UUID, attempt: int, worker: str | None, now: str) -> str:
    """The LeaseLost message for a fence; ``now`` says what the task is at present."""
    return (
        f"task {fence_task}: attempt {attempt} by {worker or 'a local run'} "
        f"is no longer current ({now}); stop working on it, nothing more it writes is kept"
    )


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...


class _Driver(Protocol):
    """The few things a link needs from a DB-API connection."""

    def transaction(self) -> Any: ...
    def execute(self, sql: str, params: dict[str, Any]) -> _Cursor: ...
    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


# Each statement is written once with :name parameters and {now}/{lease}/{json} holes the
# dialect fills in (the database's clock, as in ``schema.db_now``).
_INSERT_RUNNING = """
INSERT INTO tasks (id, project, name, type, status, status_reason, script, env, container,
    parameters, tags, runtime, comment, parent_id, output_uri, created_at, updated_at,
    started_at, worker, attempt, tries, max_attempts, lease_expires_at)
VALUES (:id, :project, :name, :type, 'running', '', {json_script}, {json_env},
    {json_container}, {json_parameters}, {json_tags}, {json_runtime}, :comment, NULL,
    :output_uri, {now}, {now}, {now}, NULL, 1, 1, :max_attempts, {lease})
"""
_FENCE = (
    "id = :task_id AND attempt = :attempt AND status = 'running' AND "
    "(worker = :worker OR (worker IS NULL AND :worker_null = 1))"
)
_HOLD = "SELECT id FROM tasks WHERE " + _FENCE + "{share}"
_READ = (
    "SELECT project, name, status, attempt, worker, parameters, output_uri FROM tasks "
    "WHERE id = :task_id"
)
_SET_PARAMETERS = (
    "UPDATE tasks SET parameters = {json_parameters}, updated_at = {now} WHERE id = :task_id"
)
_INSERT_LOG = (
    "INSERT INTO task_logs (task_id, attempt, at, stream, text) "
    "VALUES (:task_id, :attempt, {now}, :stream, :text)"
)
_INSERT_SCALAR = (
    "INSERT INTO task_scalars (task_id, attempt, title, series, iteration, value, at) "
    "VALUES (:task_id, :attempt, :title, :series, :iteration, :value, {now})"
)
_UPSERT_SUMMARY = """
INSERT INTO task_scalar_summary (task_id, title, series, attempt, last, min, max, last_iteration)
VALUES (:task_id, :title, :series, :attempt, :last, :min, :max, :last_iteration)
ON CONFLICT (task_id, title, series) DO UPDATE SET
    attempt = excluded.attempt, last = excluded.last, last_iteration = excluded.last_iteration,
    min = CASE WHEN task_scalar_summary.attempt < excluded.attempt THEN excluded.min
               ELSE {least}(task_scalar_summary.min, excluded.min) END,
    max = CASE WHEN task_scalar_summary.attempt < excluded.attempt THEN excluded.max
               ELSE {greatest}(task_scalar_summary.max, excluded.max) END
"""
_RENEW = (
    "UPDATE tasks SET lease_expires_at = {lease} WHERE " + _FENCE + " RETURNING stop_requested_at"
)
_FINISH = (
    "UPDATE tasks SET status = :status, exit_code = :exit_code, status_reason = :reason, "
    "finished_at = {now}, updated_at = {now}, lease_expires_at = NULL WHERE "
    + _FENCE
    + " RETURNING id"
)
_NOW_IS = "SELECT status, attempt, worker FROM tasks WHERE id = :task_id"
_REVISION = "SELECT version_num FROM alembic_version"
_JSON_COLUMNS = ("script", "env", "container", "parameters", "tags", "runtime")


class RunLink:
    """The fenced writes of one run; thread-safe (the reporter thread shares it)."""

    def __init__(self, driver: _Driver, *, postgres: bool, lease_seconds: float) -> None:
        self._driver = driver
        self._postgres = postgres
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._sql: dict[str, str] = {}

    # ---- the run's writes ---------------------------------------------------------------

    def create_running(
        self,
        *,
        project: str,
        name: str,
        task_type: str,
        script: dict[str, Any],
        env: dict[str, Any],
        container: dict[str, Any] | None = None,
        parameters: dict[str, str] | None = None,
        tags: Sequence[str] = (),
        comment: str = "",
        output_uri: str | None = None,
        max_attempts: int,
    ) -> RunFence:
        """Store a new task already running, owned by this process (no worker)."""
        task_id = uuid.uuid4()
        values = {
            "id": self._uid(task_id),
            "project": project,
            "name": name,
            "type": task_type,
            "script": json.dumps(script),
            "env": json.dumps(env),
            "container": json.dumps(container or {}),
            "parameters": json.dumps(parameters or {}),
            "tags": json.dumps(list(tags)),
            "runtime": "{}",
            "comment": comment,
            "output_uri": output_uri,
            "max_attempts": max_attempts,
            "lease": self.lease_seconds,
        }
        with self._write():
            self._run(_INSERT_RUNNING, values)
        return RunFence(task_id=task_id, attempt=1, worker=None)

    def read(self, task_id: uuid.UUID) -> RunTask:
        """The task a run attaches to (an agent's); NotFound when there is none."""
        with self._lock:
            row = self._run(_READ, {"task_id": self._uid(task_id)}).fetchone()
        if row is None:
            raise NotFound(f"no task with id {task_id}: check CLEARQ_TASK_ID")
        project, name, status, attempt, worker, parameters, output_uri = row
        return RunTask(
            id=task_id,
            project=project,
            name=name,
            status=TaskStatus(status),
            attempt=attempt,
            worker=worker,
            parameters=dict(_json(parameters)),
            output_uri=output_uri,
        )

    def update_parameters(self, fence: RunFence, values: dict[str, str]) -> dict[str, str]:
        """Merge ``values`` into the running task's parameters; return them all."""
        with self._write():
            self._hold(fence)
            row = self._run(_READ, {"task_id": self._uid(fence.task_id)}).fetchone()
            merged = {**_json(row[5]), **values}
            self._run(
                _SET_PARAMETERS,
                {"task_id": self._uid(fence.task_id), "parameters": json.dumps(merged)},
            )
        return merged

    def append(
        self,
        fence: RunFence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[Point],
        *,
        plots: Sequence[PlotRow] = (),
        samples: Sequence[SampleRow] = (),
    ) -> None:
        """Write a batch of (stream, text) log pieces, scalar points, plots and debug
        samples in one transaction."""
        if not logs and not points and not plots and not samples:
            return
        bad = {stream for stream, _ in logs} - LOG_STREAMS
        if bad:
            raise InvalidInput(f"unknown log streams {sorted(bad)}; use {sorted(LOG_STREAMS)}")
        results.check_rows(plots, samples)
        task = {"task_id": self._uid(fence.task_id), "attempt": fence.attempt}
        with self._write():
            self._hold(fence)
            if logs:
                rows = [{**task, "stream": s, "text": t} for s, t in logs]
                self._run_many(_INSERT_LOG, rows)
            if points:
                rows = [
                    {**task, "title": t, "series": s, "iteration": i, "value": v}
                    for t, s, i, v in points
                ]
                self._run_many(_INSERT_SCALAR, rows)
                folded = summarise(points)
                summary = [{**task, "title": t, "series": s, **v} for (t, s), v in folded.items()]
                self._run_many(_UPSERT_SUMMARY, summary)
            if plots:
                self._run_many(results.INSERT_PLOT, results.plot_params(task, plots))
            if samples:
                rows = results.sample_params(task, samples)
                self._run_many(results.FORGET_SAMPLE, rows)
                self._run_many(results.INSERT_SAMPLE, rows)

    def heartbeat(self, fence: RunFence) -> Beat:
        """Extend the run's lease; say whether it is still held and if a stop was asked."""
        with self._write():
            row = self._run(_RENEW, {**self._fence(fence), "lease": self.lease_seconds}).fetchone()
        return Beat(held=row is not None, stop_requested=row is not None and row[0] is not None)

    def finish(
        self, fence: RunFence, status: TaskStatus, *, exit_code: int | None, reason: str
    ) -> None:
        """Record how the run ended; LeaseLost when the attempt is no longer its own."""
        if status not in RUN_END_STATUSES:
            raise InvalidInput(f"a run ends completed, failed or stopped, not {status}")
        values = {**self._fence(fence), "status": status.value}
        values.update(exit_code=exit_code, reason=reason)
        with self._write():
            if self._run(_FINISH, values).fetchone() is None:
                raise self._lost(fence)

    def revision(self) -> str | None:
        """The schema revision of the database; None when it has no clearq schema."""
        try:
            with self._lock:
                row = self._run(_REVISION, {}).fetchone()
        except StoreError:
            return None
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._driver.close()

    # ---- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock, self._driver.transaction():
            yield

    def _hold(self, fence: RunFence) -> None:
        if self._run(_HOLD, self._fence(fence)).fetchone() is None:
            raise self._lost(fence)

    def _lost(self, fence: RunFence) -> LeaseLost:
        row = self._run(_NOW_IS, {"task_id": self._uid(fence.task_id)}).fetchone()
        now = "it no longer exists"
        if row is not None:
            now = f"it is {row[0]} at attempt {row[1]} (worker {row[2] or 'none'})"
        return LeaseLost(lost_message(fence.task_id, fence.attempt, fence.worker, now))

    def _fence(self, fence: RunFence) -> dict[str, Any]:
        return {
            "task_id": self._uid(fence.task_id),
            "attempt": fence.attempt,
            "worker": fence.worker,
            "worker_null": int(fence.worker is None),
        }

    def _uid(self, value: uuid.UUID) -> Any:
        # The schema's Uuid column: native on PostgreSQL, 32 hex digits on SQLite.
        return value if self._postgres else value.hex

    def _run(self, template: str, params: dict[str, Any]) -> _Cursor:
        return self._driver.execute(self._render(template), params)

    def _run_many(self, template: str, rows: Sequence[dict[str, Any]]) -> None:
        self._driver.execute_many(self._render(template), rows)

    def _render(self, template: str) -> str:
        sql = self._sql.get(template)
        if sql is None:
            sql = template.format_map(_Holes(self._postgres))
            if self._postgres:
                sql = _NAMED.sub(r"%(\1)s", sql)
            self._sql[template] = sql
        return sql


_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


class _Holes(dict[str, str]):
    """The dialect's pieces of SQL for the {holes} in the statements above."""

    def __init__(self, postgres: bool) -> None:
        super().__init__()
        self._pg = postgres

    def __missing__(self, key: str) -> str:
        if key.startswith("json_"):
            return f"CAST(:{key[5:]} AS json)" if self._pg else f":{key[5:]}"
        return _PG_HOLES[key] if self._pg else _SQLITE_HOLES[key]


_PG_HOLES = {
    "now": "now()",
    "lease": "(now() + make_interval(secs => CAST(:lease AS double precision)))",
    "share": " FOR SHARE",
    "least": "least",
    "greatest": "greatest",
}
# The text layout SQLAlchemy writes for SQLite datetimes (schema.db_now).
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', julianday('now') + ({offset}) / 86400.0)"
_SQLITE_HOLES = {
    "now": _SQLITE_NOW.format(offset="0"),
    "lease": _SQLITE_NOW.format(offset=":lease"),
    "share": "",
    "least": "min",
    "greatest": "max",
}


def _json(value: Any) -> Any:
    # psycopg decodes json columns itself; sqlite3 hands back the text.
    return json.loads(value) if isinstance(value, str | bytes) else value


# ---- opening a link ---------------------------------------------------------------------


def open_run_link(url: str, *, lease_seconds: float) -> RunLink:
    """A link to the store at ``url``, its schema checked (created on an empty database)."""
    kind, target = _parse_url(url)
    link = _connect(kind, target, lease_seconds)
    try:
        if link.revision() != SCHEMA_REVISION:
            _ensure_schema_slowly(url)  # first use of a database, or one to upgrade
    except BaseException:
        link.close()
        raise
    return link


def _ensure_schema_slowly(url: str) -> None:
    from clearq.scheduler.engine import Database
    from clearq.scheduler.migrate import ensure_schema

    db = Database(url)
    try:
        ensure_schema(db)
    finally:
        db.dispose()


def _parse_url(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    backend = scheme.split("+", 1)[0].lower()
    if backend == "sqlite" and rest.startswith("/"):
        path = rest[1:].split("?", 1)[0]
        if path and path != ":memory:":
            return "sqlite", path
    if backend in ("postgresql", "postgres") and rest:
        return "postgresql", f"postgresql://{rest}"
    # Anything else: the store's own parser says what is wrong with it.
    from clearq.scheduler.engine import normalise_url

    normalise_url(url)
    raise ConfigError(
        f"database URL {url!r} cannot be used by a run; give sqlite:/// or postgresql://"
    )


def _connect(kind: str, target: str, lease_seconds: float) -> RunLink:
    if kind == "sqlite":
        return RunLink(_SqliteDriver(target), postgres=False, lease_seconds=lease_seconds)
    from clearq.scheduler.runlink_pg import PgDriver

    return RunLink(PgDriver(target), postgres=True, lease_seconds=lease_seconds)


class _SqliteDriver:
    """sqlite3 with the store's settings: WAL, writes under BEGIN IMMEDIATE."""

    def __init__(self, path: str) -> None:
        try:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the SQLite store {path}: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self._call(self._conn.execute, "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.rollback()
            raise
        self._call(self._conn.execute, "COMMIT")

    def execute(self, sql: str, params: dict[str, Any]) -> _Cursor:
        """Run one statement."""
        cursor: _Cursor = self._call(self._conn.execute, sql, params)
        return cursor

    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run one statement for each row."""
        self._call(self._conn.executemany, sql, rows)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @staticmethod
    def _call(method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                raise SchemaError(f"the store has no clearq schema ({e})") from e
            raise StoreError(f"the SQLite store said: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"the SQLite store said: {e}") from e
