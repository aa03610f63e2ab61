"""Schedules and triggers: a clone of a task enqueued at each time, with no process polling.

A schedule keeps exactly one *waiting clone* of its task in its queue: a queued task whose
entry carries the schedule's id (``queue_entries.schedule_id``) and, for a time schedule,
a ``not_before`` at the next time, as a retry's delay does. The agents' ordinary claim
hands that entry out once its time has come; the same transaction that claims it
*fires* the schedule (:func:`fire`): it writes the next waiting clone, at the first time
still ahead of the database's clock. So the schedule fires exactly once per claimed entry
across every agent (the entry is claimed once), the clone runs like any task, and times
missed while no agent was up collapse into the one run made when an agent comes back.

A trigger is a schedule whose waiting clone is held (``held_by = 'trigger'``) until a
task of its project reaches its status. A database trigger on ``tasks`` (migration 0016),
in the transaction of the status change whichever path made it, records the event
(``schedule_events``) and releases the entry; the claim that fires the trigger takes the
oldest event, fills ``${trigger.task.id}`` (``.name``, ``.project``, ``.status``) into
the clone's parameters and writes the next waiting clone, released at once if more
events wait. A trigger never fires on its own task nor on a clone of it (which would
loop).

::

    add ──> [clone waits: entry(schedule_id, not_before=next)] ──claim──> clone runs
                 ^                                                   │ same transaction
                 └────────────── next clone, next time ──────────────┘

Dequeuing or aborting the waiting clone pauses the schedule (``schedule list`` shows no
next run); removing the schedule deletes its waiting clone, which never ran. Deleting
its task or its queue deletes the schedule.

PostgreSQL's lock-free claim statement passes scheduled entries over (it runs outside a
transaction, so nothing could follow it); a claimer that serves a queue with schedules
claims it in a transaction instead (``claim.Claimer``), as it does a capped queue.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from clearq.errors import InvalidInput, NotFound
from clearq.models import ScheduleInfo, ScheduleKind, Task, TaskStatus, clone_spec, current_user
from clearq.scheduler import fenced
from clearq.scheduler.cadence import Cadence, zone
from clearq.scheduler.engine import Database
from clearq.scheduler.queues import insert_entry, queue_row
from clearq.scheduler.rows import fetch_task, transition
from clearq.scheduler.schema import (
    db_now,
    queue_entries,
    queues,
    schedule_events,
    schedules,
    tasks,
)
from clearq.scheduler.sqla_exec import on
from clearq.scheduler.statements import TRIGGER_HOLD
from clearq.scheduler.tasks import create_in

TRIGGER_FIELDS = ("id", "name", "project", "status")
"""What ``${trigger.task.<field>}`` may name in a triggered clone's parameters."""


def cadence_of(row: Row[Any]) -> Cadence:
    """The times of a stored time schedule."""
    return Cadence(
        anchor=row.created_at,
        every_seconds=row.every_seconds,
        cron=row.cron,
        timezone=row.timezone,
    )


class ScheduleOps:
    """Schedules and triggers: add, list, remove (the firing is the claim's: :func:`fire`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        every_seconds: float | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        name: str | None = None,
        priority: int = 0,
        user: str | None = None,
    ) -> ScheduleInfo:
        """Enqueue a clone of ``task_id`` in ``queue`` every interval, or at each cron time.

        The first clone waits in the queue for the first time after now.
        """
        if timezone is not None:
            zone(timezone)
        kind = ScheduleKind.EVERY if every_seconds is not None else ScheduleKind.CRON
        with self._db.write() as conn:
            now = _now(conn)
            cadence = Cadence(
                anchor=now, every_seconds=every_seconds, cron=cron, timezone=timezone
            )  # InvalidInput for a bad line, both or neither
            values = {
                "kind": kind.value,
                "every_seconds": every_seconds,
                "cron": cron,
                "timezone": timezone,
                "created_at": now,
            }
            schedule_id = _insert(conn, task_id, queue, name, priority, user, values)
            row = _row(conn, schedule_id)
            _write_next(conn, row, not_before=cadence.next_after(now), held=None)
        return self.get(schedule_id)

    def add_trigger(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        on_status: TaskStatus | None = None,
        on_project: str | None = None,
        on_tag: str | None = None,
        name: str | None = None,
        priority: int = 0,
        user: str | None = None,
    ) -> ScheduleInfo:
        """Enqueue a clone of ``task_id`` each time a task of ``on_project`` (None: any)
        reaches ``on_status``, or gains the tag ``on_tag``; ``${trigger.task.id}`` in its
        parameters names that task."""
        check_trigger(on_status, on_tag)
        values = {
            "kind": ScheduleKind.TRIGGER.value,
            "on_status": None if on_status is None else on_status.value,
            "on_project": on_project,
            "on_tag": on_tag,
            "created_at": db_now(),
        }
        with self._db.write() as conn:
            schedule_id = _insert(conn, task_id, queue, name, priority, user, values)
            _write_next(conn, _row(conn, schedule_id), not_before=None, held=TRIGGER_HOLD)
        return self.get(schedule_id)

    def get(self, schedule_id: int) -> ScheduleInfo:
        """One schedule; NotFound naming the fix when there is none."""
        found = self._infos(schedules.c.id == schedule_id)
        if not found:
            raise NotFound(
                f"no schedule with id {schedule_id}: see the ids with `clearq schedule list`"
            )
        return found[0]

    def list(self) -> builtins.list[ScheduleInfo]:
        """Every schedule and trigger, by id."""
        return self._infos(sa.true())

    def _infos(self, where: sa.ColumnElement[bool]) -> builtins.list[ScheduleInfo]:
        events = (
            sa.select(sa.func.count())
            .where(schedule_events.c.schedule_id == schedules.c.id)
            .scalar_subquery()
        )
        query = (
            sa.select(
                schedules,
                queues.c.name.label("queue_name"),
                queue_entries.c.task_id.label("next_task_id"),
                queue_entries.c.not_before,
                queue_entries.c.held_by,
                events.label("pending_events"),
            )
            .select_from(
                schedules.join(queues, queues.c.id == schedules.c.queue_id).outerjoin(
                    queue_entries, queue_entries.c.schedule_id == schedules.c.id
                )
            )
            .where(where)
            .order_by(schedules.c.id)
        )
        with self._db.read() as conn:
            return [_info(r) for r in conn.execute(query)]

    def remove(self, schedule_id: int) -> ScheduleInfo:
        """Remove a schedule; its waiting clone, which never ran, is deleted with it."""
        info = self.get(schedule_id)
        with self._db.write() as conn:
            # Entries first, as a claim locks them (then the schedule's row): a claim in
            # flight ends before this goes on. The clone it wrote is taken by the second
            # pass, after the schedule's row is gone.
            waiting = _take_entries(conn, schedule_id)
            conn.execute(schedules.delete().where(schedules.c.id == schedule_id))
            waiting += _take_entries(conn, schedule_id)
            if waiting:
                conn.execute(
                    tasks.delete().where(
                        tasks.c.id.in_(waiting), tasks.c.status == TaskStatus.QUEUED.value
                    )
                )
        return info


def check_trigger(on_status: TaskStatus | None, on_tag: str | None) -> None:
    """InvalidInput unless a trigger fires on exactly one of a status or a tag it can."""
    if (on_status is None) == (on_tag is None):
        raise InvalidInput(
            "a trigger fires on a status (--on-status) or a tag (--on-tag): give one"
        )
    if on_status in (TaskStatus.CREATED, TaskStatus.QUEUED):
        raise InvalidInput(
            f"a trigger fires when a task runs or ends, not when it is {on_status}: "
            "use running, completed, failed, stopped or skipped"
        )
    if on_tag is not None and (not on_tag or on_tag != on_tag.strip()):
        raise InvalidInput(f"a trigger's tag {on_tag!r} is empty or has surrounding spaces")


def fire(conn: Connection, fired: Sequence[tuple[uuid.UUID, int]]) -> None:
    """Fire the schedules whose entries a claim just took, in the claim's transaction.

    ``fired``: (the claimed task, its entry's schedule id). Each schedule writes its next
    waiting clone; a trigger also fills its claimed clone's ``${trigger.task.…}``
    parameters from the oldest event it had. A schedule removed meanwhile fires nothing:
    its last clone runs as a plain task.
    """
    for task_id, schedule_id in fired:
        row = conn.execute(
            sa.select(schedules).where(schedules.c.id == schedule_id).with_for_update()
        ).first()
        if row is None:
            continue
        if row.kind == ScheduleKind.TRIGGER.value:
            _take_event(conn, schedule_id, task_id)
            more = conn.execute(
                sa.select(schedule_events.c.id)
                .where(schedule_events.c.schedule_id == schedule_id)
                .limit(1)
            ).first()
            _write_next(conn, row, not_before=None, held=None if more else TRIGGER_HOLD)
        else:
            _write_next(conn, row, not_before=cadence_of(row).next_after(_now(conn)), held=None)
        conn.execute(
            schedules.update()
            .where(schedules.c.id == schedule_id)
            .values(fired=schedules.c.fired + 1, last_fired_at=db_now(), last_task_id=task_id)
        )


def substitute(parameters: Mapping[str, str], source: Task) -> dict[str, str]:
    """``parameters`` with every ``${trigger.task.<field>}`` filled in from ``source``."""
    values = {
        "id": str(source.id),
        "name": source.name,
        "project": source.project,
        "status": source.status.value,
    }
    out = {}
    for key, value in parameters.items():
        for field in TRIGGER_FIELDS:
            value = value.replace(f"${{trigger.task.{field}}}", values[field])
        out[key] = value
    return out


def _now(conn: Connection) -> datetime:
    now: datetime = conn.execute(sa.select(db_now())).scalar_one()
    return now


def _insert(
    conn: Connection,
    task_id: uuid.UUID,
    queue: str,
    name: str | None,
    priority: int,
    user: str | None,
    values: dict[str, Any],
) -> int:
    """Insert the schedule's row after checking its task and queue; its id."""
    template = fetch_task(conn, task_id)
    if template.nodes > 1:
        raise InvalidInput(
            f"task {task_id} runs on {template.nodes} nodes at once: schedules and triggers "
            "start one-node tasks only"
        )
    queue_id = queue_row(conn, queue).id
    schedule_id: int = conn.execute(
        schedules.insert()
        .values(
            task_id=task_id,
            queue_id=queue_id,
            name=name or template.name,
            priority=priority,
            created_by=user or current_user(),
            fired=0,
            **values,
        )
        .returning(schedules.c.id)
    ).scalar_one()
    return schedule_id


def _row(conn: Connection, schedule_id: int) -> Row[Any]:
    return conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id)).one()


def _write_next(
    conn: Connection, row: Row[Any], *, not_before: datetime | None, held: str | None
) -> uuid.UUID:
    """Queue the schedule's next waiting clone of its task (``not_before``, ``held``)."""
    template = fetch_task(conn, row.task_id)
    spec = clone_spec(template, name=row.name, user=row.created_by)
    clone_id = create_in(conn, spec, max_attempts=template.max_attempts)
    if row.kind == ScheduleKind.TRIGGER.value:
        where = f" of project {row.on_project!r}" if row.on_project else ""
        what = f"gaining tag {row.on_tag!r}" if row.on_tag else f"becoming {row.on_status}"
        why = f"waits for trigger {row.id}: a task{where} {what}"
    else:
        why = f"waits for schedule {row.id}"
    transition(
        conn,
        clone_id,
        TaskStatus.QUEUED,
        expect=TaskStatus.CREATED,
        queue_id=row.queue_id,
        queued_at=db_now(),
        status_reason=why,
    )
    insert_entry(conn, queue_id=row.queue_id, task_id=clone_id, priority=row.priority)
    conn.execute(
        queue_entries.update()
        .where(queue_entries.c.task_id == clone_id)
        .values(schedule_id=row.id, not_before=not_before, held_by=held)
    )
    return clone_id


def _take_event(conn: Connection, schedule_id: int, task_id: uuid.UUID) -> None:
    """Turn the trigger's oldest event into the claimed clone's parameters."""
    event = conn.execute(
        sa.select(schedule_events.c.id, schedule_events.c.task_id)
        .where(schedule_events.c.schedule_id == schedule_id)
        .order_by(schedule_events.c.id)
        .limit(1)
    ).first()
    if event is None:  # its task was deleted since: the clone runs with what it has
        return
    conn.execute(schedule_events.delete().where(schedule_events.c.id == event.id))
    source = fetch_task(conn, event.task_id)
    claimed = fetch_task(conn, task_id)
    fenced.set_parameters(on(conn), task_id, substitute(claimed.parameters, source))


def _take_entries(conn: Connection, schedule_id: int) -> builtins.list[uuid.UUID]:
    """Delete the schedule's waiting entries; their tasks."""
    return list(
        conn.execute(
            queue_entries.delete()
            .where(queue_entries.c.schedule_id == schedule_id)
            .returning(queue_entries.c.task_id)
        ).scalars()
    )


def _info(r: Row[Any]) -> ScheduleInfo:
    waiting = r.next_task_id is not None
    return ScheduleInfo(
        id=r.id,
        kind=ScheduleKind(r.kind),
        task_id=r.task_id,
        queue=r.queue_name,
        name=r.name,
        priority=r.priority,
        every_seconds=r.every_seconds,
        cron=r.cron,
        timezone=r.timezone,
        on_status=None if r.on_status is None else TaskStatus(r.on_status),
        on_project=r.on_project,
        on_tag=r.on_tag,
        created_at=r.created_at,
        created_by=r.created_by,
        fired=r.fired,
        last_fired_at=r.last_fired_at,
        last_task_id=r.last_task_id,
        next_task_id=r.next_task_id,
        next_at=r.not_before if waiting and r.held_by is None else None,
        pending_events=r.pending_events,
    )
