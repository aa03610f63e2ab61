"""One checker for every fault's history, Jepsen-style: what the store and the runs say.

The tasks' code appends marks (start, alive every 0.2 s, end; on the machine-wide
monotonic clock) to a file per task, and so does a child process each run starts (child,
every 0.2 s: a task's own children must end with its attempt too); the store keeps the
tasks, their status events, their logs and scalars. From both, for every acknowledged
(enqueued) task:

- exactly one terminal status, and it is ``completed`` (the code never fails): anything
  else is **lost**;
- nothing still queued or running once the fleet is done (**stuck**);
- no write of a superseded attempt accepted: a log line or scalar of attempt *a* stored
  after *a* was requeued, reaped or ended (**stale**);
- runs of the code to its end beyond the first (**duplicated**: execution is at least
  once, so these are counted, not forbidden);
- a superseded attempt's process, or its child, still alive after the next attempt
  started (**overlaps**);
- no task process, task's child or agent left alive after the fleet stopped (**orphans**).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import task_events, task_logs, task_scalars, tasks

TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.SKIPPED}
)
STALE_TOLERANCE = timedelta(seconds=0.5)
"""A write racing the requeue's transaction may carry a time just after it: not stale."""


@dataclass(frozen=True)
class Verdict:
    """What one fault's history shows."""

    fault: str
    tasks: int
    lost: int
    duplicated: int
    stale: int
    stuck: int
    orphans: int
    overlaps: int
    requeues: int
    recovery_s: float | None
    problems: tuple[str, ...] = field(default=())

    def row(self) -> dict[str, Any]:
        """The verdict as a flat record (the fault table's row)."""
        return asdict(self)


@dataclass(frozen=True)
class Mark:
    attempt: int
    pid: int
    kind: str
    t: float


def read_marks(folder: Path, task_id: uuid.UUID) -> list[Mark]:
    """The marks one task's runs wrote (none if it never ran)."""
    path = folder / f"{task_id}.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Mark(**json.loads(line)) for line in lines if line.strip().endswith("}")]


def check(
    store: Store,
    fault: str,
    ids: Sequence[uuid.UUID],
    marks: Path,
    agent_pids: Iterable[int] = (),
    *,
    recovery_s: float | None = None,
) -> Verdict:
    """Check the history of tasks ``ids`` after the fleet stopped."""
    problems: list[str] = []
    rows = _tasks(store, ids)
    events = _events(store, ids)
    lost = stuck = requeues = 0
    for task_id in ids:
        status, attempt, reason = rows[task_id]
        ends = [e for e in events[task_id] if e[1] in TERMINAL]
        requeues += max(0, attempt - 1)
        if status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
            stuck += 1
            problems.append(f"task {task_id} is still {status}")
        if status is not TaskStatus.COMPLETED:
            lost += 1
            tail = "".join(line.text for line in store.outputs.logs(task_id))[-1500:]
            problems.append(f"task {task_id} ended {status}, not completed: {reason}\n{tail}")
        if status in TERMINAL and len(ends) != 1:
            problems.append(f"task {task_id} has {len(ends)} terminal statuses")
    stale = _stale(store, ids, events, problems)
    runs = {task_id: read_marks(marks, task_id) for task_id in ids}
    duplicated = sum(max(0, sum(m.kind == "end" for m in r) - 1) for r in runs.values())
    overlaps = sum(_overlaps(r) for r in runs.values())
    pids = {m.pid for r in runs.values() for m in r} | set(agent_pids)
    orphans = [pid for pid in pids if _alive(pid)]
    problems += [f"process {pid} outlived the fleet" for pid in orphans]
    return Verdict(
        fault=fault,
        tasks=len(ids),
        lost=lost,
        duplicated=duplicated,
        stale=stale,
        stuck=stuck,
        orphans=len(orphans),
        overlaps=overlaps,
        requeues=requeues,
        recovery_s=None if recovery_s is None else round(recovery_s, 1),
        problems=tuple(problems),
    )


def _tasks(store: Store, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[TaskStatus, int, str]]:
    with store.db.read() as conn:
        found = conn.execute(
            sa.select(tasks.c.id, tasks.c.status, tasks.c.attempt, tasks.c.status_reason).where(
                tasks.c.id.in_(ids)
            )
        ).all()
    return {r.id: (TaskStatus(r.status), r.attempt, r.status_reason) for r in found}


Event = tuple[datetime, TaskStatus, int]


def _events(store: Store, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Event]]:
    with store.db.read() as conn:
        found = conn.execute(
            sa.select(task_events.c.task_id, task_events.c.at, task_events.c.status)
            .add_columns(task_events.c.attempt)
            .where(task_events.c.task_id.in_(ids))
            .order_by(task_events.c.id)
        ).all()
    events: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for r in found:
        events[r.task_id].append((r.at, TaskStatus(r.status), r.attempt))
    return events


def _superseded_at(events: list[Event], attempt: int) -> datetime | None:
    """When ``attempt`` stopped being current: requeued, reaped, ended, or a later claim."""
    times = [
        at for at, status, a in events if a > attempt or (a == attempt and status != "running")
    ]
    return min(times) if times else None


def _stale(
    store: Store,
    ids: Sequence[uuid.UUID],
    events: dict[uuid.UUID, list[Event]],
    problems: list[str],
) -> int:
    stale = 0
    with store.db.read() as conn:
        for table in (task_logs, task_scalars):
            found = conn.execute(
                sa.select(table.c.task_id, table.c.attempt, table.c.at).where(
                    table.c.task_id.in_(ids)
                )
            ).all()
            for r in found:
                ended = _superseded_at(events[r.task_id], r.attempt)
                if ended is not None and r.at > ended + STALE_TOLERANCE:
                    stale += 1
                    problems.append(
                        f"task {r.task_id}: a {table.name} row of attempt {r.attempt} stored "
                        f"at {r.at:%H:%M:%S.%f}, after the attempt ended at {ended:%H:%M:%S.%f}"
                    )
    return stale


def _overlaps(marks: list[Mark]) -> int:
    by_attempt: dict[int, list[float]] = defaultdict(list)
    for m in marks:
        by_attempt[m.attempt].append(m.t)
    attempts = sorted(by_attempt)
    return sum(
        1 for a, b in itertools.pairwise(attempts) if max(by_attempt[a]) > min(by_attempt[b])
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def format_table(verdicts: Iterable[dict[str, Any]]) -> str:
    """The fault table, one line per fault, as plain text."""
    columns = ("fault", "tasks", "lost", "duplicated", "stale", "stuck", "orphans")
    columns += ("overlaps", "requeues", "recovery_s")
    rows = [columns] + [tuple(str(v.get(c, "")) for c in columns) for v in verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
