"""The in-memory store's state: tasks, queue entries, dependencies, outputs, on one clock.

Everything lives in plain dicts and lists guarded by one lock (the store is shared by
threads, as a real one is). Time comes from ``clock`` (UTC ``datetime``), so a test can
move it forward instead of sleeping past a lease.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clearq.enums import TaskStatus
from clearq.errors import IllegalTransition, LeaseLost, NotFound
from clearq.models import (
    Artifact,
    DebugSample,
    Fence,
    LogLine,
    ModelRecord,
    QueueInfo,
    Quota,
    QuotaKind,
    ReportedPlot,
    ScalarPoint,
    Task,
    WorkerInfo,
    WorkerState,
)
from clearq.scheduler.fenced import lost_message
from clearq.scheduler.lifecycle import check_transition

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The machine's clock, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass
class Entry:
    """A queue entry: claimed by (priority desc, id)."""

    id: int
    queue_id: int
    task_id: uuid.UUID
    priority: int
    enqueued_at: datetime
    not_before: datetime | None = None
    schedule_id: int | None = None
    """The schedule whose waiting clone this entry is (``scheduler.schedules``)."""
    held_by: str | None = None
    """``trigger`` while a trigger's waiting clone waits for its event."""


@dataclass
class ScheduleRow:
    """A schedule or trigger, as the ``schedules`` table holds it."""

    id: int
    kind: str
    task_id: uuid.UUID
    queue: str
    name: str
    priority: int
    created_at: datetime
    created_by: str | None
    every_seconds: float | None = None
    cron: str | None = None
    timezone: str | None = None
    on_status: str | None = None
    on_project: str | None = None
    on_tag: str | None = None
    fired: int = 0
    last_fired_at: datetime | None = None
    last_task_id: uuid.UUID | None = None


@dataclass
class Summary:
    """Last, min, max and last iteration of one (title, series), for one attempt."""

    attempt: int
    last: float
    min: float
    max: float
    last_iteration: int


@dataclass
class State:
    """Every row of the in-memory store."""

    clock: Clock
    lock: threading.RLock = field(default_factory=threading.RLock)
    tasks: dict[uuid.UUID, Task] = field(default_factory=dict)
    created_order: dict[uuid.UUID, int] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    entries: dict[uuid.UUID, Entry] = field(default_factory=dict)
    parents: dict[uuid.UUID, dict[uuid.UUID, bool]] = field(default_factory=dict)
    logs: list[tuple[uuid.UUID, LogLine]] = field(default_factory=list)
    scalars: list[tuple[uuid.UUID, int, ScalarPoint, datetime]] = field(default_factory=list)
    """(task, attempt, point, when it was reported)."""
    summary: dict[tuple[uuid.UUID, str, str], Summary] = field(default_factory=dict)
    artifacts: dict[tuple[uuid.UUID, str], Artifact] = field(default_factory=dict)
    plots: list[tuple[uuid.UUID, ReportedPlot]] = field(default_factory=list)
    samples: list[tuple[uuid.UUID, DebugSample]] = field(default_factory=list)
    models: dict[uuid.UUID, ModelRecord] = field(default_factory=dict)
    workers: dict[str, WorkerInfo] = field(default_factory=dict)
    quotas: dict[tuple[QuotaKind, str], Quota] = field(default_factory=dict)
    fair_usage: dict[tuple[int, str], float] = field(default_factory=dict)
    """(queue id, owner) -> score, as ``fair_usage`` holds it (clearq.testing.fair)."""
    metrics: list[tuple[str, datetime, Any]] = field(default_factory=list)
    schedules: dict[int, ScheduleRow] = field(default_factory=dict)
    schedule_events: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    """A trigger's events not yet run (schedule id, task), oldest first."""
    chores: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    """Fleet-wide chores: name -> (next time, holder), as the ``chores`` table."""
    notices: list[tuple[str, str]] = field(default_factory=list)
    """Hints sent (channel, payload), as PostgreSQL's NOTIFY would; tests read them."""
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        """The store's clock."""
        return self.clock()

    def task(self, task_id: uuid.UUID) -> Task:
        """The task by id; NotFound as the real store says it."""
        found = self.tasks.get(task_id)
        if found is None:
            raise NotFound(f"no task with id {task_id}: check the id with `clearq task list`")
        return found

    def put(self, task: Task, **changes: Any) -> Task:
        """Store ``task`` with ``changes`` (and a new ``updated_at``); the stored value."""
        updated = task.model_copy(update={"updated_at": self.now(), **changes})
        self.tasks[task.id] = updated
        if updated.status is not task.status:
            self._fire_triggers(updated, lambda row: row.on_status == updated.status.value)
        gained = set(updated.tags) - set(task.tags)
        if gained:
            self._fire_triggers(updated, lambda row: row.on_tag in gained)
        return updated

    def _fire_triggers(self, task: Task, matches: Callable[[ScheduleRow], bool]) -> None:
        # What the database triggers of migrations 0016 (a status) and 0019 (a tag) do.
        for row in sorted(self.schedules.values(), key=lambda r: r.id):
            if (
                matches(row)
                and row.on_project in (None, task.project)
                and task.id != row.task_id
                and task.parent_id != row.task_id
            ):
                self.schedule_events.append((row.id, task.id))
                for entry in self.entries.values():
                    if entry.schedule_id == row.id and entry.held_by == "trigger":
                        entry.held_by = None

    def transition(
        self,
        task_id: uuid.UUID,
        target: TaskStatus,
        *,
        expect: frozenset[TaskStatus] | None = None,
        **changes: Any,
    ) -> Task:
        """Move a task to ``target`` as ``rows.transition`` does, or raise the same errors."""
        task = self.task(task_id)
        check_transition(task_id, task.status, target)
        if expect is not None and task.status not in expect:
            wanted = " or ".join(sorted(expect))
            raise IllegalTransition(
                f"task {task_id} is {task.status}, not {wanted}: it cannot become {target} this way"
            )
        return self.put(task, status=target, **changes)

    def mark_seen(self, worker_ids: Iterable[str]) -> None:
        """Mark the registered ones of ``worker_ids`` active and heard from now (a
        heartbeat; ``workers.mark_seen``'s twin). The caller holds the lock."""
        now = self.now()
        for wid in worker_ids:
            if wid in self.workers:
                self.workers[wid] = self.workers[wid].model_copy(
                    update={"last_seen": now, "state": WorkerState.ACTIVE}
                )

    def hold(self, fence: Fence) -> Task:
        """The task while ``fence`` owns its running attempt; else LeaseLost."""
        task = self.tasks.get(fence.task_id)
        if (
            task is None
            or task.status is not TaskStatus.RUNNING
            or task.attempt != fence.attempt
            or task.worker != fence.worker
        ):
            raise self.lost(fence)
        return task

    def lost(self, fence: Fence) -> LeaseLost:
        """The LeaseLost error for ``fence``, worded as the real store's."""
        task = self.tasks.get(fence.task_id)
        now = "it no longer exists"
        if task is not None:
            now = f"it is {task.status} at attempt {task.attempt} (worker {task.worker or 'none'})"
        return LeaseLost(lost_message(fence.task_id, fence.attempt, fence.worker, now))

    def queue_by_id(self, queue_id: int | None) -> QueueInfo | None:
        """The queue with ``queue_id``, if any."""
        return next((q for q in self.queues.values() if q.id == queue_id), None)

    def add_entry(
        self,
        task_id: uuid.UUID,
        queue_id: int,
        priority: int,
        *,
        front: bool = False,
        delay: float | None = None,
    ) -> None:
        """An entry last in its priority, or (``front``) first of the whole queue."""
        entry_id = next(self.ids)
        if front:
            entry_id = min((e.id for e in self.entries.values()), default=1) - 1
            top = [e.priority for e in self.entries.values() if e.queue_id == queue_id]
            priority = max([priority, *top])
        not_before = None
        if delay:
            from datetime import timedelta

            not_before = self.now() + timedelta(seconds=delay)
        self.entries[task_id] = Entry(entry_id, queue_id, task_id, priority, self.now(), not_before)
        self.notices.append(("clearq_enqueue", str(queue_id)))

    def skip_blocked(self) -> list[uuid.UUID]:
        """Skip queued tasks whose parent gave up (``fenced.skip_blocked``); their ids."""
        skipped: list[uuid.UUID] = []
        while True:
            reasons: dict[uuid.UUID, str] = {}
            for child, parents in sorted(self.parents.items()):
                if self.tasks[child].status is not TaskStatus.QUEUED:
                    continue
                for parent_id, go_on in sorted(parents.items()):
                    parent = self.tasks[parent_id]
                    if parent.status in _GAVE_UP and not go_on:
                        why = f"task {parent.name!r} ({parent.id}) it depends on {parent.status}"
                        reasons.setdefault(child, why)
            if not reasons:
                return skipped
            for child, reason in reasons.items():
                self.entries.pop(child, None)
                self.put(
                    self.tasks[child],
                    status=TaskStatus.SKIPPED,
                    status_reason=f"skipped: {reason}",
                    finished_at=self.now(),
                )
                skipped.append(child)


_GAVE_UP = frozenset({TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.SKIPPED})
