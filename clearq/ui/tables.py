"""The page's live tables, built once here for both the first render and each poll.

A table is rows of cells; a cell is text, optionally a link, a CSS class or a checkbox.
The template renders them with autoescaping; the page's script renders the polled JSON
with ``textContent`` only, so no stored string is ever parsed as HTML.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from clearq.models import (
    QueueEntry,
    ScalarSummary,
    ScheduleInfo,
    ScheduleKind,
    Task,
    TaskEvent,
    WorkerCommand,
    WorkerInfo,
    WorkerState,
)
from clearq.scheduler.views import QueueStats
from clearq.ui import fmt


@dataclass(frozen=True)
class Cell:
    """One table cell."""

    text: str
    href: str | None = None
    cls: str | None = None
    check: str | None = None
    """A checkbox's value (a task id), for tables that select rows."""


@dataclass(frozen=True)
class Row:
    """One table row; ``id`` keeps a row's selection across polls."""

    id: str
    cells: tuple[Cell, ...] = field(default_factory=tuple)


def as_json(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows as JSON-ready values, without the cells' empty fields."""
    return [
        {
            "id": r.id,
            "cells": [{k: v for k, v in asdict(c).items() if v is not None} for c in r.cells],
        }
        for r in rows
    ]


def link(path: str, **query: str) -> str:
    """A path with its query string encoded."""
    return f"{path}?{urlencode(query)}" if query else path


def task_href(task_id: uuid.UUID) -> str:
    """The page of one task."""
    return f"/tasks/{task_id}"


def status_cell(status: str) -> Cell:
    """A task's status, styled by its value."""
    return Cell(status, cls=f"status status-{status}")


WORKER_COLUMNS = ("worker", "host", "queues", "current task", "running for", "last seen", "state")


def worker_rows(
    workers: Sequence[WorkerInfo], running: Mapping[uuid.UUID, Task], now: datetime, range_: str
) -> list[Row]:
    """The workers table: what each serves and runs; idle, busy, paused, draining or gone."""
    rows = []
    for w in workers:
        current = [running[t] for t in w.tasks if t in running]
        state = _worker_state(w)
        started = min((t.started_at for t in current if t.started_at), default=None)
        cells = (
            Cell(w.id, href=link("/workers", worker=w.id, range=range_)),
            Cell(w.host),
            Cell(", ".join(w.queues)),
            _tasks_cell(current, len(w.tasks)),
            Cell(fmt.since(started, now)),
            Cell(fmt.ago(w.last_seen, now)),
            Cell(state, cls=f"state state-{state}"),
        )
        rows.append(Row(id=w.id, cells=cells))
    return rows


def _worker_state(w: WorkerInfo) -> str:
    if w.state is WorkerState.GONE:
        return "gone"
    held = {WorkerCommand.DRAIN: "draining", WorkerCommand.PAUSE: "paused"}
    if w.command is not None:
        return held[w.command]  # an operator's hold (clearq workers drain|pause)
    return "busy" if w.tasks else "idle"


def _tasks_cell(current: Sequence[Task], count: int) -> Cell:
    if not current:
        return Cell("-" if count == 0 else f"{count} task(s)")
    first = current[0]
    more = f" (+{len(current) - 1})" if len(current) > 1 else ""
    return Cell(f"{first.name}{more}", href=task_href(first.id))


QUEUE_COLUMNS = (
    "queue",
    "GPUs per task",
    "waiting",
    "running",
    "workers serving",
    "busy",
    "oldest wait",
    "average wait (1h)",
)


def queue_rows(stats: Sequence[QueueStats], now: datetime) -> list[Row]:
    """The queues table."""
    return [
        Row(
            id=q.name,
            cells=(
                Cell(q.name, href=link("/queue", name=q.name)),
                Cell(str(q.gpus)),
                Cell(str(q.waiting)),
                Cell(str(q.running) if q.max_running is None else f"{q.running}/{q.max_running}"),
                Cell(str(len(q.serving)) + (f": {', '.join(q.serving)}" if q.serving else "")),
                Cell(str(q.busy)),
                Cell(fmt.since(q.oldest_enqueued_at, now)),
                Cell(fmt.duration(q.average_wait_seconds)),
            ),
        )
        for q in stats
    ]


ENTRY_COLUMNS = ("", "position", "task", "id", "priority", "waiting for")


def entry_rows(entries: Sequence[QueueEntry], now: datetime) -> list[Row]:
    """A queue's tasks in claim order, each with a checkbox to select it."""
    return [
        Row(
            id=str(e.task_id),
            cells=(
                Cell("", check=str(e.task_id)),
                Cell(str(position)),
                Cell(e.task_name, href=task_href(e.task_id)),
                Cell(str(e.task_id)[:8]),
                Cell(str(e.priority)),
                Cell(fmt.since(e.enqueued_at, now)),
            ),
        )
        for position, e in enumerate(entries, start=1)
    ]


TASK_COLUMNS = ("task", "project", "status", "queue", "worker", "created", "tags")


def task_rows(tasks: Sequence[Task], now: datetime) -> list[Row]:
    """The tasks list."""
    return [
        Row(
            id=str(t.id),
            cells=(
                Cell(t.name, href=task_href(t.id)),
                Cell(t.project),
                status_cell(t.status.value),
                Cell(t.queue or "-"),
                Cell(t.worker or "-"),
                Cell(fmt.ago(t.created_at, now)),
                Cell(", ".join(t.tags) or "-"),
            ),
        )
        for t in tasks
    ]


SUMMARY_COLUMNS = ("title", "series", "last", "min", "max", "last iteration")


def summary_rows(summary: Sequence[ScalarSummary]) -> list[Row]:
    """The last, min and max of each scalar series."""
    return [
        Row(
            id=f"{s.title}/{s.series}",
            cells=(
                Cell(s.title),
                Cell(s.series),
                Cell(f"{s.last:.6g}"),
                Cell(f"{s.min:.6g}"),
                Cell(f"{s.max:.6g}"),
                Cell(str(s.last_iteration)),
            ),
        )
        for s in summary
    ]


HISTORY_COLUMNS = ("at (UTC)", "status", "attempt", "worker", "reason")


def history_rows(events: Sequence[TaskEvent]) -> list[Row]:
    """A task's status changes, oldest first."""
    return [
        Row(
            id=str(i),
            cells=(
                Cell(fmt.stamp(e.at)),
                status_cell(e.status.value),
                Cell(str(e.attempt)),
                Cell(e.worker or "-"),
                Cell(e.reason or "-"),
            ),
        )
        for i, e in enumerate(events)
    ]


SCHEDULE_COLUMNS = ("", "id", "name", "queue", "when", "fired", "last run", "next")


def schedule_when(s: ScheduleInfo) -> str:
    """What makes a schedule fire, as a person says it."""
    if s.kind is ScheduleKind.EVERY:
        return f"every {fmt.duration(s.every_seconds)}"
    if s.kind is ScheduleKind.CRON:
        return f"cron '{s.cron}' ({s.timezone or 'UTC'})"
    where = f" of project {s.on_project}" if s.on_project else ""
    if s.on_tag is not None:
        return f"when a task{where} gains tag {s.on_tag}"
    return f"when a task{where} becomes {s.on_status}"


def _schedule_next(s: ScheduleInfo, now: datetime) -> str:
    if s.next_task_id is None:
        return "paused: its waiting clone was dequeued"
    if s.kind is ScheduleKind.TRIGGER:
        return f"{s.pending_events} event(s) waiting" if s.pending_events else "next matching task"
    if s.next_at is not None and s.next_at <= now:
        return "due: waits for an agent"
    return f"in {fmt.duration((s.next_at - now).total_seconds())}" if s.next_at else "-"


def schedule_rows(schedules: Sequence[ScheduleInfo], now: datetime) -> list[Row]:
    """The schedules table: a checkbox (the schedule's id) to select rows for removal."""
    return [
        Row(
            id=str(s.id),
            cells=(
                Cell("", check=str(s.id)),
                Cell(str(s.id)),
                Cell(s.name, href=task_href(s.task_id)),
                Cell(s.queue, href=link("/queue", name=s.queue)),
                Cell(schedule_when(s)),
                Cell(str(s.fired)),
                Cell(
                    fmt.ago(s.last_fired_at, now),
                    href=task_href(s.last_task_id) if s.last_task_id else None,
                ),
                Cell(_schedule_next(s, now)),
            ),
        )
        for s in schedules
    ]
