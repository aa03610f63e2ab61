"""Claim one named task out of its queue: the hook of ``clearq task run ID``.

The same claim as the agents' (``clearq.scheduler.claim``): in one transaction the task's
queue entry is locked and deleted and the task turns ``running`` with the worker, the next
attempt and a lease on the database's clock, so an agent racing for the same entry gets
either all of it or nothing. A task still waiting for a parent cannot be claimed; a retry's
delay (``not_before``) and a queue's cap do not hold back a task a person or an outside
launcher asked to run now. A schedule's waiting clone run this way fires its schedule as
an agent's claim does (the next clone waits for the next time); a trigger's waiting clone
cannot be run before its event.

When nothing was claimed the same transaction says why: the task is not queued, it
waits for a parent, or another worker is claiming it at this very moment.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput, NotFound
from clearq.models import Claim, TaskStatus
from clearq.scheduler.claim import BLOCKED
from clearq.scheduler.engine import Database
from clearq.scheduler.schedules import fire
from clearq.scheduler.schema import queue_entries, queues, task_dependencies, tasks
from clearq.scheduler.statements import GANG_HOLD, TRIGGER_HOLD
from clearq.scheduler.take import PG_TAKE_AND_RUN, SQLITE_RUN

_PG_CLAIM_TASK = sa.text(
    """
WITH picked AS MATERIALIZED (
    SELECT e.id, e.task_id, e.priority, e.schedule_id, q.name AS queue_name
    FROM queue_entries e
    JOIN queues q ON q.id = e.queue_id
    WHERE e.task_id = :task_id
      AND (e.held_by IS NULL OR e.held_by NOT IN ('gang', 'trigger'))
      AND NOT EXISTS (
          SELECT 1 FROM task_dependencies d JOIN tasks p ON p.id = d.parent_id
          WHERE d.child_id = e.task_id AND p.status <> 'completed'
            AND NOT (d.continue_on_failure AND p.status IN ('failed', 'stopped', 'skipped'))
      )
    FOR UPDATE OF e SKIP LOCKED
),
"""
    + PG_TAKE_AND_RUN
)

_SQLITE_ENTRY = (
    sa.select(queue_entries.c.id, queue_entries.c.schedule_id, queues.c.name)
    .select_from(queue_entries.join(queues, queues.c.id == queue_entries.c.queue_id))
    .where(
        queue_entries.c.task_id == sa.bindparam("task_id"),
        sa.or_(
            queue_entries.c.held_by.is_(None),
            queue_entries.c.held_by.not_in([GANG_HOLD, TRIGGER_HOLD]),
        ),
        ~BLOCKED,
    )
)


def claim_task(db: Database, *, worker: str, task_id: uuid.UUID, lease_seconds: float) -> Claim:
    """Claim ``task_id`` for ``worker``; InvalidInput saying why when it cannot be."""
    with db.write() as conn:
        if db.is_postgres:
            params = {"task_id": task_id, "worker": worker, "lease": float(lease_seconds)}
            row = conn.execute(_PG_CLAIM_TASK, params).first()
            if row is not None:
                if row.schedule_id is not None:
                    fire(conn, [(task_id, row.schedule_id)])
                return Claim(
                    task_id=row.id, attempt=row.attempt, worker=worker, queue=row.queue_name
                )
        else:
            entry = conn.execute(_SQLITE_ENTRY, {"task_id": task_id}).first()
            if entry is not None:
                conn.execute(queue_entries.delete().where(queue_entries.c.id == entry.id))
                attempt = conn.execute(
                    sa.text(SQLITE_RUN),
                    {"worker": worker, "lease": float(lease_seconds), "task_id": task_id.hex},
                ).scalar_one()
                if entry.schedule_id is not None:
                    fire(conn, [(task_id, entry.schedule_id)])
                return Claim(task_id=task_id, attempt=attempt, worker=worker, queue=entry.name)
        raise _why_not(conn, task_id)


def _why_not(conn: Connection, task_id: uuid.UUID) -> Exception:
    """The reason a named task could not be claimed, as an error a person can act on."""
    row = conn.execute(
        sa.select(tasks.c.status, tasks.c.worker, tasks.c.nodes).where(tasks.c.id == task_id)
    ).first()
    if row is None:
        return NotFound(f"no task with id {task_id}: check the id with `clearq task list`")
    status = TaskStatus(row.status)
    if status is TaskStatus.RUNNING:
        return InvalidInput(f"task {task_id} is already running on {row.worker or 'a run by hand'}")
    if status is TaskStatus.QUEUED and row.nodes > 1:
        return InvalidInput(
            f"task {task_id} runs on {row.nodes} nodes at once: agents start it as a gang "
            "(`clearq agent` on as many machines); `clearq task run` runs one-node tasks"
        )
    if status is not TaskStatus.QUEUED:
        return InvalidInput(
            f"task {task_id} is {status}, not queued: enqueue it first "
            f"(`clearq task enqueue {task_id} --queue QUEUE`)"
        )
    waiting = conn.execute(
        sa.select(tasks.c.id, tasks.c.status)
        .select_from(task_dependencies.join(tasks, tasks.c.id == task_dependencies.c.parent_id))
        .where(
            task_dependencies.c.child_id == task_id,
            tasks.c.status != TaskStatus.COMPLETED.value,
            ~sa.and_(
                task_dependencies.c.continue_on_failure,
                tasks.c.status.in_(["failed", "stopped", "skipped"]),
            ),
        )
    ).first()
    if waiting is not None:
        return InvalidInput(
            f"task {task_id} waits for task {waiting.id} ({waiting.status}) to complete: "
            "run it once its parents have completed"
        )
    held = conn.execute(
        sa.select(queue_entries.c.schedule_id).where(
            queue_entries.c.task_id == task_id, queue_entries.c.held_by == TRIGGER_HOLD
        )
    ).first()
    if held is not None:
        return InvalidInput(
            f"task {task_id} waits for trigger {held.schedule_id}: it runs when a task "
            "reaches the trigger's status (`clearq schedule list`)"
        )
    return InvalidInput(f"task {task_id} is being claimed by another worker right now")
