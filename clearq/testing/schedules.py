"""The in-memory store's schedules and triggers (``ports.SchedulePort``).

The same design as ``clearq.scheduler.schedules``: one waiting clone per schedule, whose
entry carries the schedule's id; the claim that takes it fires the schedule
(:func:`fire`); a status change records a trigger's events and releases its entry
(``State.put``, as the database trigger of migration 0016 does).
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime

from clearq.errors import InvalidInput, NotFound
from clearq.models import ScheduleInfo, ScheduleKind, TaskStatus, clone_spec, current_user
from clearq.scheduler.cadence import Cadence, zone
from clearq.scheduler.schedules import check_trigger, substitute
from clearq.scheduler.statements import TRIGGER_HOLD
from clearq.testing.records import MemoryTasks
from clearq.testing.state import ScheduleRow, State


class MemorySchedules:
    """Schedules and triggers, in memory."""

    def __init__(self, state: State, *, max_attempts: int) -> None:
        self._s = state
        self._max_attempts = max_attempts

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
        """Enqueue a clone of ``task_id`` in ``queue`` every interval, or at each cron time."""
        if timezone is not None:
            zone(timezone)
        kind = ScheduleKind.EVERY if every_seconds is not None else ScheduleKind.CRON
        with self._s.lock:
            now = self._s.now()
            cadence = Cadence(anchor=now, every_seconds=every_seconds, cron=cron, timezone=timezone)
            row = self._insert(task_id, queue, name, priority, user, kind, now)
            row.every_seconds, row.cron, row.timezone = every_seconds, cron, timezone
            _write_next(self._s, row, not_before=cadence.next_after(now), held=None)
            return self.get(row.id)

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
        """Enqueue a clone of ``task_id`` each time a task reaches ``on_status`` or gains
        ``on_tag``."""
        check_trigger(on_status, on_tag)
        with self._s.lock:
            row = self._insert(
                task_id, queue, name, priority, user, ScheduleKind.TRIGGER, self._s.now()
            )
            row.on_status = None if on_status is None else on_status.value
            row.on_project, row.on_tag = on_project, on_tag
            _write_next(self._s, row, not_before=None, held=TRIGGER_HOLD)
            return self.get(row.id)

    def _insert(
        self,
        task_id: uuid.UUID,
        queue: str,
        name: str | None,
        priority: int,
        user: str | None,
        kind: ScheduleKind,
        now: datetime,
    ) -> ScheduleRow:
        s = self._s
        template = s.task(task_id)
        if template.nodes > 1:
            raise InvalidInput(
                f"task {task_id} runs on {template.nodes} nodes at once: schedules and triggers "
                "start one-node tasks only"
            )
        if queue not in s.queues:
            raise NotFound(
                f"no queue named {queue!r}: create it with `clearq queue create {queue}`"
            )
        row = ScheduleRow(
            id=max(s.schedules, default=0) + 1,
            kind=kind.value,
            task_id=task_id,
            queue=queue,
            name=name or template.name,
            priority=priority,
            created_at=now,
            created_by=user or current_user(),
        )
        s.schedules[row.id] = row
        return row

    def get(self, schedule_id: int) -> ScheduleInfo:
        """One schedule; NotFound naming the fix when there is none."""
        with self._s.lock:
            row = self._s.schedules.get(schedule_id)
            if row is None:
                raise NotFound(
                    f"no schedule with id {schedule_id}: see the ids with `clearq schedule list`"
                )
            return self._info(row)

    def list(self) -> builtins.list[ScheduleInfo]:
        """Every schedule and trigger, by id."""
        with self._s.lock:
            return [self._info(r) for _, r in sorted(self._s.schedules.items())]

    def _info(self, row: ScheduleRow) -> ScheduleInfo:
        s = self._s
        entry = next((e for e in s.entries.values() if e.schedule_id == row.id), None)
        return ScheduleInfo(
            id=row.id,
            kind=ScheduleKind(row.kind),
            task_id=row.task_id,
            queue=row.queue,
            name=row.name,
            priority=row.priority,
            every_seconds=row.every_seconds,
            cron=row.cron,
            timezone=row.timezone,
            on_status=None if row.on_status is None else TaskStatus(row.on_status),
            on_project=row.on_project,
            on_tag=row.on_tag,
            created_at=row.created_at,
            created_by=row.created_by,
            fired=row.fired,
            last_fired_at=row.last_fired_at,
            last_task_id=row.last_task_id,
            next_task_id=None if entry is None else entry.task_id,
            next_at=entry.not_before if entry is not None and entry.held_by is None else None,
            pending_events=sum(1 for sid, _ in s.schedule_events if sid == row.id),
        )

    def remove(self, schedule_id: int) -> ScheduleInfo:
        """Remove a schedule; its waiting clone, which never ran, is deleted with it."""
        s = self._s
        with s.lock:
            info = self.get(schedule_id)
            del s.schedules[schedule_id]
            s.schedule_events = [e for e in s.schedule_events if e[0] != schedule_id]
            for entry in [e for e in s.entries.values() if e.schedule_id == schedule_id]:
                del s.entries[entry.task_id]
                if s.tasks[entry.task_id].status is TaskStatus.QUEUED:
                    del s.tasks[entry.task_id]
            return info


def fire(s: State, task_id: uuid.UUID, schedule_id: int) -> None:
    """Fire the schedule whose entry a claim just took (``schedules.fire``)."""
    row = s.schedules.get(schedule_id)
    if row is None:
        return
    if row.kind == ScheduleKind.TRIGGER.value:
        event = next((e for e in s.schedule_events if e[0] == schedule_id), None)
        if event is not None:
            s.schedule_events.remove(event)
            claimed = s.task(task_id)
            parameters = substitute(claimed.parameters, s.task(event[1]))
            s.tasks[task_id] = claimed.model_copy(update={"parameters": parameters})
        more = any(e[0] == schedule_id for e in s.schedule_events)
        _write_next(s, row, not_before=None, held=None if more else TRIGGER_HOLD)
    else:
        cadence = Cadence(
            anchor=row.created_at,
            every_seconds=row.every_seconds,
            cron=row.cron,
            timezone=row.timezone,
        )
        _write_next(s, row, not_before=cadence.next_after(s.now()), held=None)
    row.fired += 1
    row.last_fired_at = s.now()
    row.last_task_id = task_id


def _write_next(
    s: State, row: ScheduleRow, *, not_before: datetime | None, held: str | None
) -> None:
    template = s.task(row.task_id)
    spec = clone_spec(template, name=row.name, user=row.created_by)
    clone = MemoryTasks(s, max_attempts=template.max_attempts).create(spec)
    s.transition(
        clone.id,
        TaskStatus.QUEUED,
        queue=row.queue,
        queued_at=s.now(),
        status_reason=f"waits for {'trigger' if held else 'schedule'} {row.id}",
    )
    s.add_entry(clone.id, s.queues[row.queue].id, row.priority)
    entry = s.entries[clone.id]
    entry.schedule_id, entry.not_before, entry.held_by = row.id, not_before, held
