"""Reading task rows and changing a task's status: shared by every store module."""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from clearq.errors import IllegalTransition, NotFound
from clearq.models import Container, EnvSpec, Fence, Script, Task, TaskStatus
from clearq.scheduler import fenced
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.schema import db_now, queues, tasks
from clearq.scheduler.sqla_exec import on


def task_select() -> sa.Select[Any]:
    """SELECT of full task rows with the name of the task's queue."""
    return sa.select(tasks, queues.c.name.label("queue_name")).select_from(
        tasks.outerjoin(queues, tasks.c.queue_id == queues.c.id)
    )


def task_from_row(row: Row[Any]) -> Task:
    """Build the Task value from a row of :func:`task_select`."""
    m = row._mapping
    return Task(
        id=m["id"],
        project=m["project"],
        name=m["name"],
        type=m["type"],
        status=TaskStatus(m["status"]),
        status_reason=m["status_reason"],
        script=Script.model_validate(m["script"]),
        env=EnvSpec.model_validate(m["env"]),
        container=Container.model_validate(m["container"]),
        parameters=dict(m["parameters"]),
        tags=tuple(m["tags"]),
        comment=m["comment"],
        parent_id=m["parent_id"],
        output_uri=m["output_uri"],
        runtime=dict(m["runtime"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        queued_at=m["queued_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        queue=m["queue_name"],
        worker=m["worker"],
        attempt=m["attempt"],
        tries=m["tries"],
        max_attempts=m["max_attempts"],
        max_run_seconds=m["max_run_seconds"],
        lease_expires_at=m["lease_expires_at"],
        stop_requested_at=m["stop_requested_at"],
        exit_code=m["exit_code"],
        max_retries=m["max_retries"],
        retries=m["retries"],
        retry_delay_seconds=m["retry_delay_seconds"],
        environment=dict(m["environment"] or {}),
        nodes=m["nodes"],
        user=m["created_by"],
        archived_at=m["archived_at"],
    )


def fetch_task(conn: Connection, task_id: uuid.UUID) -> Task:
    """The task by id; NotFound when there is none."""
    row = conn.execute(task_select().where(tasks.c.id == task_id)).first()
    if row is None:
        raise NotFound(f"no task with id {task_id}: check the id with `clearq task list`")
    return task_from_row(row)


def lock_status(conn: Connection, task_id: uuid.UUID) -> TaskStatus:
    """Lock the task's row for this transaction and return its status."""
    row = conn.execute(
        sa.select(tasks.c.status).where(tasks.c.id == task_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no task with id {task_id}: check the id with `clearq task list`")
    return TaskStatus(row.status)


def transition(
    conn: Connection,
    task_id: uuid.UUID,
    target: TaskStatus,
    *,
    expect: TaskStatus | frozenset[TaskStatus] | None = None,
    **values: Any,
) -> TaskStatus:
    """Move a task to ``target`` if the lifecycle allows it; return the status it left.

    The row is locked and the update is conditioned on the status read, so a raced
    change fails loudly instead of overwriting. ``expect`` narrows the allowed start
    to what the operation means (a dequeue starts from queued, a reset from an end).
    """
    current = lock_status(conn, task_id)
    check_transition(task_id, current, target)
    if isinstance(expect, TaskStatus):
        expect = frozenset({expect})
    if expect is not None and current not in expect:
        raise_unexpected(task_id, current, expect, target)
    result = conn.execute(
        tasks.update()
        .where(tasks.c.id == task_id, tasks.c.status == current.value)
        .values(status=target.value, updated_at=db_now(), **values)
    )
    if result.rowcount != 1:  # pragma: no cover - the row lock rules this out
        raise_unexpected(task_id, current, frozenset({current}), target)
    return current


def raise_unexpected(
    task_id: uuid.UUID, current: TaskStatus, expect: frozenset[TaskStatus], target: TaskStatus
) -> NoReturn:
    """Raise IllegalTransition for a task that is not in a status an operation needs."""
    wanted = " or ".join(sorted(expect))
    raise IllegalTransition(
        f"task {task_id} is {current}, not {wanted}: it cannot become {target} this way"
    )


def hold(conn: Connection, fence: Fence) -> None:
    """Check ``fence`` and keep it (a share lock) until the transaction ends; else LeaseLost."""
    fenced.hold(on(conn), fence)
