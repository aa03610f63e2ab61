"""The task repository: create, read, edit drafts, start by hand, reset."""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.models import (
    FINAL_STATUSES,
    Container,
    EnvSpec,
    Fence,
    HistoryMark,
    Script,
    Task,
    TaskEvent,
    TaskSpec,
    TaskStatus,
    check_environment,
    clone_spec,
)
from clearq.scheduler import fenced
from clearq.scheduler.dependencies import parents_of
from clearq.scheduler.engine import Database
from clearq.scheduler.references import has_references, resolve
from clearq.scheduler.rows import fetch_task, hold, task_from_row, task_select, transition
from clearq.scheduler.schema import (
    db_now,
    queues,
    task_artifacts,
    task_events,
    task_logs,
    task_models,
    task_plots,
    task_samples,
    task_scalar_summary,
    task_scalars,
    tasks,
)
from clearq.scheduler.sqla_exec import on
from clearq.secrets import scrub_env_fields, scrub_text

log = logging.getLogger("clearq.scheduler")

DEFAULT_LIST_LIMIT = 100
RESET_TABLES = (
    task_logs,
    task_scalars,
    task_scalar_summary,
    task_artifacts,
    task_plots,
    task_samples,
    task_models,
)
"""What a reset deletes: everything a run of the task reported."""


class TaskRepo:
    """Tasks as records. Status changes that involve queues live in QueueOps and Leases."""

    def __init__(self, db: Database, *, max_attempts: int, lease_seconds: float) -> None:
        self._db = db
        self._max_attempts = max_attempts
        self._lease_seconds = lease_seconds

    def create(self, spec: TaskSpec) -> Task:
        """Store a new task in status created."""
        with self._db.write() as conn:
            return fetch_task(conn, create_in(conn, spec, max_attempts=self._max_attempts))

    def clone(
        self, task_id: uuid.UUID, *, name: str | None = None, parent: uuid.UUID | None = None
    ) -> Task:
        """A new draft with the task's code, environment, parameters and limits.

        Its ``parent_id`` is ``parent``, by default the task cloned.
        """
        return self.create(clone_spec(self.get(task_id), name=name, parent=parent))

    def get(self, task_id: uuid.UUID) -> Task:
        """The task by id; NotFound when there is none."""
        with self._db.read() as conn:
            return fetch_task(conn, task_id)

    def list(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        status: TaskStatus | Sequence[TaskStatus] | None = None,
        queue: str | None = None,
        tags: Sequence[str] = (),
        limit: int = DEFAULT_LIST_LIMIT,
        user: str | None = None,
        archived: bool | None = False,
    ) -> list[Task]:
        """Tasks matching every filter given, newest first.

        Archived tasks are left out; ``archived=True`` lists only them, None both.
        """
        query = task_select().order_by(tasks.c.created_at.desc(), tasks.c.id)
        if archived is not None:
            stamp = tasks.c.archived_at
            query = query.where(stamp.is_not(None) if archived else stamp.is_(None))
        if not tags:
            query = query.limit(limit)
        if project is not None:
            query = query.where(tasks.c.project == project)
        if name is not None:
            query = query.where(tasks.c.name == name)
        if user is not None:
            query = query.where(tasks.c.created_by == user)
        if isinstance(status, TaskStatus):
            query = query.where(tasks.c.status == status.value)
        elif status is not None:
            query = query.where(tasks.c.status.in_([s.value for s in status]))
        if queue is not None:
            query = query.where(queues.c.name == queue)
        wanted = set(tags)
        found: list[Task] = []
        with self._db.read() as conn:
            # Tags live in a JSON list, filtered here; the limit counts matches only.
            for row in conn.execute(query):
                task = task_from_row(row)
                if wanted <= set(task.tags):
                    found.append(task)
                    if len(found) >= limit:
                        break
        return found

    def ids_starting_with(self, hex_digits: str, *, limit: int = 10) -> builtins.list[uuid.UUID]:
        """Ids whose 32 hex digits start with ``hex_digits`` (for ids typed in short)."""
        if not hex_digits or any(c not in "0123456789abcdef" for c in hex_digits):
            raise InvalidInput(f"{hex_digits!r} is not a run of lowercase hex digits")
        hexed: sa.ColumnElement[str]
        if self._db.is_postgres:
            hexed = sa.func.replace(sa.cast(tasks.c.id, sa.Text), "-", "")
        else:
            hexed = sa.cast(tasks.c.id, sa.Text)  # stored as 32 hex digits
        query = (
            sa.select(tasks.c.id)
            .where(hexed.startswith(hex_digits, autoescape=True))
            .order_by(tasks.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            return list(conn.execute(query).scalars())

    def edit(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = None,
        parameters: dict[str, str] | None = None,
        script: Script | None = None,
        env: EnvSpec | None = None,
        container: Container | None = None,
        tags: Sequence[str] | None = None,
        comment: str | None = None,
        max_attempts: int | None = None,
        max_run_seconds: float | None = None,
        output_uri: str | None = None,
        max_retries: int | None = None,
        retry_delay_seconds: float | None = None,
        environment: dict[str, str] | None = None,
    ) -> Task:
        """Change a draft. Only a task in status created can be edited.

        ``environment`` replaces the task's own variables whole (``{}`` clears them).
        """
        values: dict[str, Any] = {
            "name": name,
            "parameters": None if parameters is None else dict(parameters),
            "script": None if script is None else _stored_script(script, f"task {task_id}"),
            "env": None if env is None else _stored_env(env, f"task {task_id}"),
            "container": None if container is None else container.model_dump(mode="json"),
            "tags": None if tags is None else list(tags),
            "comment": comment,
            "max_attempts": max_attempts,
            "max_run_seconds": max_run_seconds,
            "output_uri": output_uri,
            "max_retries": max_retries,
            "retry_delay_seconds": retry_delay_seconds,
            "environment": None if environment is None else _checked_environment(environment),
        }
        values = {k: v for k, v in values.items() if v is not None}
        if max_retries is not None and max_retries < 0:
            raise InvalidInput(f"max_retries cannot be negative ({max_retries})")
        if max_attempts is not None and max_attempts < 1:
            raise InvalidInput(f"max_attempts must be at least 1, not {max_attempts}")
        with self._db.write() as conn:
            current = fetch_task(conn, task_id)
            if current.status != TaskStatus.CREATED:
                raise InvalidInput(
                    f"task {task_id} is {current.status}: only a draft (created) task can be "
                    "edited; clone it, or reset it first"
                )
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.CREATED.value)
                .values(updated_at=db_now(), **values)
            )
            return fetch_task(conn, task_id)

    def update_parameters(
        self,
        task_id: uuid.UUID,
        parameters: dict[str, str],
        *,
        fence: Fence | None = None,
        replace: bool = False,
    ) -> Task:
        """Merge (or with ``replace``, set) a task's parameters.

        A draft can be changed by anyone; a running task only by its own run, which
        passes its fence (``connect()`` records the values the code used).
        """
        with self._db.write() as conn:
            x = on(conn)
            if fence is not None:
                fenced.update_parameters(x, fence, parameters, replace=replace)
                return fetch_task(conn, task_id)
            current = fetch_task(conn, task_id)
            if current.status != TaskStatus.CREATED:
                raise InvalidInput(
                    f"task {task_id} is {current.status}: only a draft (created) task's "
                    "parameters can be changed; clone it, or reset it first"
                )
            merged = dict(parameters) if replace else {**current.parameters, **parameters}
            fenced.set_parameters(x, task_id, merged)
            return fetch_task(conn, task_id)

    def update_runtime(self, fence: Fence, info: dict[str, Any]) -> None:
        """Merge facts about the current run (environment used, host, ...) into ``runtime``."""
        with self._db.write() as conn:
            fenced.update_runtime(on(conn), fence, info)

    def resolve_references(self, fence: Fence) -> dict[str, str]:
        """Fill in a running step's ``${step.…}`` parameters from its pipeline; return them all.

        Raises InvalidInput naming a reference that cannot be resolved.
        """
        with self._db.write() as conn:
            hold(conn, fence)
            current = fetch_task(conn, fence.task_id).parameters
            if not has_references(current):
                return dict(current)
            resolved = resolve(conn, fence.task_id, current)
            fenced.set_parameters(on(conn), fence.task_id, resolved)
        return resolved

    def parents(self, task_id: uuid.UUID) -> builtins.list[uuid.UUID]:
        """The tasks ``task_id`` waits for (its ``depends_on``), in id order."""
        with self._db.read() as conn:
            return [parent for parent, _ in parents_of(conn, task_id)]

    def history(self, task_id: uuid.UUID) -> builtins.list[TaskEvent]:
        """Every change of the task's status or attempt, oldest first."""
        with self._db.read() as conn:
            fetch_task(conn, task_id)  # NotFound for an unknown id
            rows = conn.execute(
                sa.select(task_events)
                .where(task_events.c.task_id == task_id)
                .order_by(task_events.c.id)
            ).all()
        return [
            TaskEvent(
                at=r.at,
                status=_event_status(r.status),
                attempt=r.attempt,
                worker=r.worker,
                reason=r.reason,
            )
            for r in rows
        ]

    def start(self, task_id: uuid.UUID, *, worker: str | None = None) -> Fence:
        """Mark a draft running without a queue: a script started by hand.

        Returns the fence its writes must carry; its lease must be renewed by heartbeats
        like any other running task, or the reaper fails it.
        """
        with self._db.write() as conn:
            transition(
                conn,
                task_id,
                TaskStatus.RUNNING,
                expect=TaskStatus.CREATED,
                worker=worker,
                attempt=tasks.c.attempt + 1,
                tries=tasks.c.tries + 1,
                started_at=db_now(),
                lease_expires_at=db_now(self._lease_seconds),
                status_reason="",
            )
            attempt = conn.execute(
                sa.select(tasks.c.attempt).where(tasks.c.id == task_id)
            ).scalar_one()
        return Fence(task_id=task_id, attempt=attempt, worker=worker)

    def reset(self, task_id: uuid.UUID) -> Task:
        """Turn an ended task back into a draft, clearing the outputs of its runs.

        The attempt counter is kept, so a worker still holding an old attempt can never
        write into the next run.
        """
        with self._db.write() as conn:
            transition(
                conn,
                task_id,
                TaskStatus.CREATED,
                expect=FINAL_STATUSES,
                status_reason="",
                worker=None,
                tries=0,
                queued_at=None,
                started_at=None,
                finished_at=None,
                lease_expires_at=None,
                stop_requested_at=None,
                exit_code=None,
                runtime={},
            )
            for table in RESET_TABLES:
                conn.execute(table.delete().where(table.c.task_id == task_id))
            return fetch_task(conn, task_id)


def create_in(conn: Connection, spec: TaskSpec, *, max_attempts: int) -> uuid.UUID:
    """Store a new draft inside the caller's transaction; its id.

    ``max_attempts``: the store's default, for a spec that names none.
    """
    new = fenced.NewTask(
        project=spec.project,
        name=spec.name,
        type=spec.type,
        script=_stored_script(spec.script, f"task {spec.name!r}"),
        env=_stored_env(spec.env, f"task {spec.name!r}"),
        container=spec.container.model_dump(mode="json"),
        parameters=dict(spec.parameters),
        tags=list(spec.tags),
        comment=spec.comment,
        parent_id=spec.parent_id,
        output_uri=spec.output_uri,
        max_attempts=spec.max_attempts or max_attempts,
        max_run_seconds=spec.max_run_seconds,
        max_retries=spec.max_retries,
        retry_delay_seconds=spec.retry_delay_seconds,
    )
    task_id = fenced.insert_task(on(conn), new, running=False)
    extra: dict[str, Any] = {"created_by": spec.user}
    if spec.environment:
        extra["environment"] = spec.environment
    if spec.nodes > 1:
        extra["nodes"] = spec.nodes
    conn.execute(tasks.update().where(tasks.c.id == task_id).values(**extra))
    return task_id


def _event_status(value: str) -> TaskStatus | HistoryMark:
    """A history entry's status: a task status, or a mark such as ``preempted``."""
    try:
        return TaskStatus(value)
    except ValueError:
        return HistoryMark(value)


def _stored_env(env: EnvSpec, where: str) -> dict[str, Any]:
    """``env`` as stored: without credentials in its URLs, each removal warned about."""
    clean, warnings = scrub_env_fields(env.model_dump(mode="json"), where)
    for warning in warnings:
        log.warning("%s", warning)
    return clean


def _stored_script(script: Script, where: str) -> dict[str, Any]:
    """``script`` as stored: its repository URL without credentials."""
    stored = script.model_dump(mode="json")
    if isinstance(stored.get("repository"), str):
        warnings: list[str] = []
        stored["repository"] = scrub_text(stored["repository"], f"{where}: repository", warnings)
        for warning in warnings:
            log.warning("%s", warning)
    return stored


def _checked_environment(environment: dict[str, str]) -> dict[str, str]:
    try:
        return check_environment(environment)
    except ValueError as e:
        raise InvalidInput(f"the task's environment: {e}") from e
