"""One run's own path to the store, on the bare database driver.

A training script that calls ``Task.init`` writes a handful of things: the task it
captured (created running), its parameters, batches of console output and scalars, lease
renewals and how it ended. Those writes go through a :class:`RunLink`, which speaks to
the standard library's ``sqlite3`` or to psycopg directly: no SQLAlchemy and no pydantic,
because a script pays for every import before its first line of training runs
(``benchmarks/task_init_overhead.py``). Everything else (queues, the claim, reading
tasks back) goes through ``Store``.

The writes themselves are not written here: each is an operation of ``fenced.py`` on the
statements of ``statements.py``, the very ones the Store runs over SQLAlchemy. This
module is the bare driver's adapter of them (``_SqliteDriver`` here, ``PgDriver`` in
``runlink_pg.py``), so a run started by hand ends exactly as an agent's run does: a
failure with retries left is retried, its waiting children are skipped, a completion
wakes the agents its children wait for.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from clearq.enums import TaskStatus
from clearq.errors import ConfigError, NotFound, SchemaError, StoreError, StoreUnavailable
from clearq.scheduler import fenced, takeover
from clearq.scheduler import runlink_results as results
from clearq.scheduler import statements as q
from clearq.scheduler.fenced import LOG_STREAMS, Point, lost_message, summarise
from clearq.scheduler.revision import SCHEMA_REVISION
from clearq.scheduler.runlink_results import PlotRow, SampleRow
from clearq.valueclass import value_class

SQLITE_BUSY_TIMEOUT_S = 30.0

__all__ = [
    "LOG_STREAMS",
    "Beat",
    "Point",
    "RunFence",
    "RunLink",
    "RunTask",
    "lost_message",
    "open_run_link",
    "summarise",
]


@value_class
class RunFence:
    """The attempt a run owns: every write names it (``models.Fence``, without pydantic)."""

    task_id: uuid.UUID
    attempt: int
    worker: str | None = None


@value_class
class Beat:
    """What a lease renewal found: still held, and whether a stop was asked for."""

    held: bool
    stop_requested: bool
    stop_reason: str = ""


@value_class
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


class _Driver(fenced.Execution, Protocol):
    """A DB-API connection as a :class:`fenced.Execution`, with transactions and close."""

    def transaction(self) -> Any: ...
    def close(self) -> None: ...


class RunLink:
    """The fenced writes of one run; thread-safe (the reporter thread shares it)."""

    def __init__(self, driver: _Driver, *, lease_seconds: float) -> None:
        self._driver = driver
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()

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
        task = fenced.NewTask(
            project=project,
            name=name,
            type=task_type,
            script=script,
            env=env,
            container=container or {},
            parameters=parameters or {},
            tags=tags,
            comment=comment,
            output_uri=output_uri,
            max_attempts=max_attempts,
        )
        with self.transaction() as x:
            task_id = fenced.insert_task(x, task, running=True, lease_seconds=self.lease_seconds)
        return RunFence(task_id=task_id, attempt=1, worker=None)

    def read(self, task_id: uuid.UUID) -> RunTask:
        """The task a run attaches to (an agent's); NotFound when there is none."""
        with self._lock:
            found = fenced.rows(self._driver, q.READ_RUN, {"task_id": task_id})
        if not found:
            raise NotFound(f"no task with id {task_id}: check CLEARQ_TASK_ID")
        project, name, status, attempt, worker, parameters, output_uri = found[0]
        return RunTask(
            id=task_id,
            project=project,
            name=name,
            status=TaskStatus(status),
            attempt=attempt,
            worker=worker,
            parameters=dict(fenced.as_json(parameters)),
            output_uri=output_uri,
        )

    def takeover_candidate(self, task_id: uuid.UUID) -> takeover.Candidate | None:
        """What an earlier task is, for ``Task.init``'s reuse and continue (None: none)."""
        with self.transaction() as x:
            return takeover.candidate(x, task_id)

    def take_over(
        self,
        task_id: uuid.UUID,
        *,
        keep_outputs: bool,
        name: str,
        script: dict[str, Any] | None,
        env: dict[str, Any] | None,
        add_tags: Sequence[str] = (),
    ) -> tuple[RunFence, int]:
        """Start an earlier task as this process's run; its fence and next iteration
        (``script`` / ``env`` None: the task keeps its own)."""
        with self.transaction() as x:
            taken = takeover.take_over(
                x,
                task_id,
                keep_outputs=keep_outputs,
                name=name,
                script=script,
                env=env,
                add_tags=add_tags,
                lease_seconds=self.lease_seconds,
            )
        return RunFence(task_id=task_id, attempt=taken.attempt, worker=None), taken.next_iteration

    def update_parameters(self, fence: RunFence, values: dict[str, str]) -> dict[str, str]:
        """Merge ``values`` into the running task's parameters; return them all."""
        with self.transaction() as x:
            return fenced.update_parameters(x, fence, values)

    def record_code(self, fence: RunFence, script: dict[str, Any], env: dict[str, Any]) -> None:
        """Write the run's captured code and packages, once its capture has ended."""
        with self.transaction() as x:
            fenced.record_code(x, fence, script, env)

    def update_runtime(self, fence: RunFence, info: Mapping[str, Any]) -> None:
        """Merge facts about the run (host, environment used, ...) into its ``runtime``."""
        with self.transaction() as x:
            fenced.update_runtime(x, fence, info)

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
        fenced.check_streams(logs)
        results.check_rows(plots, samples)
        if not logs and not points and not plots and not samples:
            return
        with self.transaction() as x:
            fenced.append(x, fence, logs, points, plots=plots, samples=samples)

    def heartbeat(self, fence: RunFence) -> Beat:
        """Extend the run's lease; say whether it is still held and if a stop was asked."""
        with self.statement() as x:
            renewal = fenced.renew(x, fence, self.lease_seconds)
        return Beat(renewal.held, renewal.stop_requested, renewal.stop_reason)

    def finish(
        self, fence: RunFence, status: TaskStatus, *, exit_code: int | None, reason: str
    ) -> None:
        """Record how the run ended, with what follows (``fenced.finish``).

        LeaseLost when the attempt is no longer its own.
        """
        fenced.finish(self, fenced.Ending(fence, status, exit_code, reason))

    def revision(self) -> str | None:
        """The schema revision of the database; None when it has no clearq schema."""
        try:
            with self._lock:
                found = fenced.rows(self._driver, q.REVISION, {})
        except StoreError:
            return None
        return str(found[0][0]) if found else None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._driver.close()

    # ---- the fenced.Connector it is -----------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[fenced.Execution]:
        """The driver inside BEGIN ... COMMIT (BEGIN IMMEDIATE on SQLite)."""
        with self._lock, self._driver.transaction():
            yield self._driver

    @contextmanager
    def statement(self) -> Iterator[fenced.Execution]:
        """The driver for one write: autocommit on PostgreSQL, a transaction on SQLite."""
        if not self._driver.postgres:
            with self.transaction() as x:
                yield x
            return
        with self._lock:
            yield self._driver


# ---- opening a link ---------------------------------------------------------------------


def open_run_link(url: str, *, lease_seconds: float, pgbouncer: bool = False) -> RunLink:
    """A link to the store at ``url``, its schema checked (created on an empty database).

    ``pgbouncer``: ``url`` is a pgbouncer in transaction mode, so nothing is prepared.
    """
    kind, target = _parse_url(url)
    link = _connect(kind, target, lease_seconds, prepare=not pgbouncer)
    try:
        if link.revision() != SCHEMA_REVISION:
            _ensure_schema_slowly(
                url, pgbouncer=pgbouncer
            )  # first use of a database, or one to upgrade
    except BaseException:
        link.close()
        raise
    return link


def _ensure_schema_slowly(url: str, *, pgbouncer: bool) -> None:
    from clearq.config import Settings
    from clearq.scheduler.engine import Database
    from clearq.scheduler.migrate import ensure_schema

    db = Database(url, settings=Settings(database_url=url, database_pgbouncer=pgbouncer))
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


def _connect(kind: str, target: str, lease_seconds: float, *, prepare: bool) -> RunLink:
    if kind == "sqlite":
        return RunLink(_SqliteDriver(target), lease_seconds=lease_seconds)
    from clearq.scheduler.runlink_pg import PgDriver

    return RunLink(PgDriver(target, prepare=prepare), lease_seconds=lease_seconds)


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
            q.sqlite_math(self._conn)
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

    postgres = False

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned."""
        cursor = self._call(self._conn.execute, sql, params)
        return list(self._call(cursor.fetchall))

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
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
            if "locked" in str(e) or "busy" in str(e):
                raise StoreUnavailable(f"the SQLite store is busy: {e}") from e
            raise StoreError(f"the SQLite store said: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"the SQLite store said: {e}") from e
