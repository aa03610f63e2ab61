"""Read-only views for the orchestration page: queue figures and downsampled time series.

Every time series is bounded by a time range and downsampled by the database into at
most ``buckets`` points, so a page that polls costs the same whatever the history holds.
Queue lengths, waits and busy workers are derived from ``task_events`` (one row per
status change, written by the database): a task waits from a ``queued`` event to the
next event, and runs from a ``running`` event to the next one.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from clearq.models import MetricsSample, ScalarPoint, TaskStatus, WorkerMetrics, WorkerState
from clearq.scheduler.engine import Database
from clearq.scheduler.schema import (
    queue_entries,
    queues,
    task_scalars,
    tasks,
    worker_metrics,
    workers,
)
from clearq.scheduler.timewindow import Window

DEFAULT_BUCKETS = 120
WAIT_WINDOW_SECONDS = 3600.0
"""The average wait of a queue is over the tasks that left it in this last stretch."""
_INT_FIELDS = frozenset({"memory_used", "memory_total", "disk_free"})
_SERIES_FIELDS = tuple(f for f in WorkerMetrics.model_fields if f != "gpus")


@dataclass(frozen=True)
class QueueStats:
    """A queue's figures now: what waits, what runs, who serves it, how long tasks wait."""

    name: str
    gpus: int
    waiting: int
    running: int
    serving: tuple[str, ...]
    """Active workers that take tasks from this queue."""
    busy: int
    """How many of ``serving`` run a task right now."""
    oldest_enqueued_at: datetime | None
    average_wait_seconds: float | None
    """Mean wait of the tasks that started in the last ``WAIT_WINDOW_SECONDS``."""
    max_running: int | None = None


@dataclass(frozen=True)
class ActivityPoint:
    """Workers at one moment: those reporting metrics and those running a task."""

    at: datetime
    total: int
    active: int


@dataclass(frozen=True)
class QueuePoint:
    """One queue at one moment: its length, and the mean wait of tasks that left it."""

    at: datetime
    length: int
    average_wait_seconds: float | None


class Views:
    """Queries the orchestration page needs and no other layer does."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _window(self, conn: Connection, range_seconds: float, buckets: int) -> Window:
        return Window.ending_now(conn, range_seconds, buckets, postgres=self._db.is_postgres)

    # ---- workers ------------------------------------------------------------------------

    def worker_series(
        self, worker_id: str, *, range_seconds: float, buckets: int = DEFAULT_BUCKETS
    ) -> builtins.list[MetricsSample]:
        """A worker's machine figures over the last ``range_seconds``, one sample per bucket.

        Figures are averaged within a bucket; GPUs are the bucket's last sample. A
        sub-worker (``host:name:k``, services mode) shows its agent's machine.
        """
        owners = {worker_id, worker_id.rsplit(":", 1)[0]}
        m = worker_metrics.c
        with self._db.read() as conn:
            w = self._window(conn, range_seconds, buckets)
            inner = (
                sa.select(w.bucket(w.epoch(m.at)).label("b"), worker_metrics)
                .where(m.worker_id.in_(owners), m.at >= w.start)
                .subquery()
            )
            averaged = [sa.func.avg(inner.c[f]).label(f) for f in _SERIES_FIELDS]
            rows = conn.execute(
                sa.select(inner.c.b, sa.func.max(inner.c.id).label("last"), *averaged)
                .group_by(inner.c.b)
                .order_by(inner.c.b)
            ).all()
            last = [r.last for r in rows]
            gpus = _pairs(conn, sa.select(m.id, m.gpus).where(m.id.in_(last)))
        return [_sample(worker_id, w.at(r.b), r, gpus[r.last]) for r in rows]

    def worker_activity(
        self, *, range_seconds: float, buckets: int = DEFAULT_BUCKETS
    ) -> builtins.list[ActivityPoint]:
        """Per bucket: workers that reported metrics (total) and that ran a task (active)."""
        m = worker_metrics.c
        with self._db.read() as conn:
            w = self._window(conn, range_seconds, buckets)
            seen = (
                sa.select(w.bucket(w.epoch(m.at)).label("b"), m.worker_id)
                .where(m.at >= w.start)
                .subquery()
            )
            total = _pairs(
                conn,
                sa.select(seen.c.b, sa.func.count(sa.distinct(seen.c.worker_id))).group_by(
                    seen.c.b
                ),
            )
            spans, grid = w.spans(TaskStatus.RUNNING), w.grid()
            overlaps = sa.and_(
                spans.c.since <= w.end_of(grid.c.i),
                sa.func.coalesce(spans.c.until, w.now.timestamp()) >= w.first + grid.c.i * w.step,
            )
            active = _pairs(
                conn,
                sa.select(grid.c.i, sa.func.count(sa.distinct(spans.c.worker)))
                .select_from(grid.join(spans, overlaps))
                .group_by(grid.c.i),
            )
        return [
            ActivityPoint(at=w.at(i), total=total.get(i, 0), active=active.get(i, 0))
            for i in range(w.buckets)
        ]

    # ---- queues -------------------------------------------------------------------------

    def queue_stats(self) -> builtins.list[QueueStats]:
        """Every queue, by name, with its waiting, running, serving and wait figures."""
        e, t = queue_entries.c, tasks.c
        running_now = t.status == TaskStatus.RUNNING.value
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    queues,
                    sa.func.count(e.id).label("waiting"),
                    sa.func.min(e.enqueued_at).label("oldest"),
                )
                .select_from(queues.outerjoin(queue_entries, e.queue_id == queues.c.id))
                .group_by(queues.c.id)
                .order_by(queues.c.name)
            ).all()
            running = _pairs(
                conn, sa.select(t.queue_id, sa.func.count()).where(running_now).group_by(t.queue_id)
            )
            active = conn.execute(
                sa.select(workers.c.id, workers.c.queues).where(
                    workers.c.state == WorkerState.ACTIVE.value
                )
            ).all()
            busy = set(conn.execute(sa.select(t.worker).where(running_now).distinct()).scalars())
            waits = self._recent_waits(conn)
        return [_queue_stats(r, running.get(r.id, 0), active, busy, waits.get(r.id)) for r in rows]

    def _recent_waits(self, conn: Connection) -> dict[int, float]:
        w = self._window(conn, WAIT_WINDOW_SECONDS, 1)
        spans = w.spans(TaskStatus.QUEUED)
        left = sa.and_(spans.c.next_status == TaskStatus.RUNNING.value, spans.c.until >= w.first)
        query = (
            sa.select(spans.c.queue_id, sa.func.avg(spans.c.until - spans.c.since))
            .where(left)
            .group_by(spans.c.queue_id)
        )
        return {q: float(avg) for q, avg in _pairs(conn, query).items()}

    def queue_series(
        self, *, range_seconds: float, buckets: int = DEFAULT_BUCKETS
    ) -> dict[str, builtins.list[QueuePoint]]:
        """Per queue and bucket: its length at the bucket's end, and the mean wait of the
        tasks that left it for a worker within the bucket.

        A task is counted in the queue it is in now (a move between queues is not an
        event of its own).
        """
        with self._db.read() as conn:
            w = self._window(conn, range_seconds, buckets)
            spans, grid = w.spans(TaskStatus.QUEUED), w.grid()
            end = w.end_of(grid.c.i)
            waiting = sa.and_(
                spans.c.since <= end, sa.or_(spans.c.until.is_(None), spans.c.until > end)
            )
            lengths = conn.execute(
                sa.select(spans.c.queue_id, grid.c.i, sa.func.count())
                .select_from(grid.join(spans, waiting))
                .group_by(spans.c.queue_id, grid.c.i)
            ).all()
            left = (
                sa.select(
                    spans.c.queue_id,
                    w.bucket(spans.c.until).label("b"),
                    (spans.c.until - spans.c.since).label("wait"),
                )
                .where(spans.c.next_status == TaskStatus.RUNNING.value, spans.c.until >= w.first)
                .subquery()
            )
            waits = conn.execute(
                sa.select(left.c.queue_id, left.c.b, sa.func.avg(left.c.wait)).group_by(
                    left.c.queue_id, left.c.b
                )
            ).all()
            names = _pairs(conn, sa.select(queues.c.id, queues.c.name))
        return _queue_points(w, names, lengths, waits)

    def queue_position(self, task_id: uuid.UUID) -> tuple[int, int] | None:
        """A queued task's place in its queue's claim order and the queue's length."""
        e = queue_entries.c
        with self._db.read() as conn:
            me = conn.execute(sa.select(queue_entries).where(e.task_id == task_id)).first()
            if me is None:
                return None
            ahead = (e.priority > me.priority) | ((e.priority == me.priority) & (e.id < me.id))
            before, length = conn.execute(
                sa.select(
                    sa.func.count().filter(ahead),
                    sa.func.count(),
                ).where(e.queue_id == me.queue_id)
            ).one()
        return before + 1, length

    # ---- tasks --------------------------------------------------------------------------

    def projects(self, *, limit: int = 500) -> builtins.list[str]:
        """Project names, sorted."""
        query = sa.select(tasks.c.project).distinct().order_by(tasks.c.project).limit(limit)
        with self._db.read() as conn:
            return list(conn.execute(query).scalars())

    def scalar_series(self, task_id: uuid.UUID, *, points: int = 500) -> builtins.list[ScalarPoint]:
        """The latest attempt's scalars, at most ``points`` per (title, series).

        Iterations are cut into ``points`` equal stretches; each gives its last
        iteration and the mean of its values.
        """
        s = task_scalars.c
        latest = sa.select(tasks.c.attempt).where(tasks.c.id == task_id).scalar_subquery()
        mine = sa.and_(s.task_id == task_id, s.attempt == latest)
        span = (
            sa.select(
                s.title,
                s.series,
                sa.func.min(s.iteration).label("lo"),
                sa.func.max(s.iteration).label("hi"),
            )
            .where(mine)
            .group_by(s.title, s.series)
            .subquery()
        )
        inner = (
            sa.select(
                s.title,
                s.series,
                s.iteration,
                s.value,
                ((s.iteration - span.c.lo) * points // (span.c.hi - span.c.lo + 1)).label("b"),
            )
            .join(span, sa.and_(span.c.title == s.title, span.c.series == s.series))
            .where(mine)
            .subquery()
        )
        query = (
            sa.select(
                inner.c.title,
                inner.c.series,
                sa.func.max(inner.c.iteration).label("iteration"),
                sa.func.avg(inner.c.value).label("value"),
            )
            .group_by(inner.c.title, inner.c.series, inner.c.b)
            .order_by(inner.c.title, inner.c.series, sa.func.max(inner.c.iteration))
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            ScalarPoint(title=r.title, series=r.series, iteration=r.iteration, value=r.value)
            for r in rows
        ]


def _pairs(conn: Connection, query: sa.Select[Any]) -> dict[Any, Any]:
    """A two-column query's rows as a dict."""
    return {key: value for key, value in conn.execute(query)}


def _sample(worker_id: str, at: datetime, row: Row[Any], gpus: Sequence[Any]) -> MetricsSample:
    values: dict[str, Any] = {}
    for field in _SERIES_FIELDS:
        value = row._mapping[field]
        if value is not None:
            value = round(float(value)) if field in _INT_FIELDS else float(value)
        values[field] = value
    metrics = WorkerMetrics.model_validate({**values, "gpus": gpus})
    return MetricsSample(worker_id=worker_id, at=at, metrics=metrics)


def _queue_stats(
    row: Any, running: int, active: Any, busy: set[str], wait: float | None
) -> QueueStats:
    serving = tuple(w.id for w in active if row.name in w.queues)
    return QueueStats(
        name=row.name,
        gpus=row.gpus,
        waiting=row.waiting,
        running=running,
        serving=serving,
        busy=sum(1 for w in serving if w in busy),
        oldest_enqueued_at=row.oldest,
        average_wait_seconds=wait,
        max_running=row.max_running,
    )


def _queue_points(
    w: Window, names: dict[int, str], lengths: Any, waits: Any
) -> dict[str, builtins.list[QueuePoint]]:
    length_of = {(q, i): n for q, i, n in lengths}
    wait_of = {(q, i): float(avg) for q, i, avg in waits if avg is not None}
    return {
        name: [
            QueuePoint(
                at=w.at(i),
                length=length_of.get((queue_id, i), 0),
                average_wait_seconds=wait_of.get((queue_id, i)),
            )
            for i in range(w.buckets)
        ]
        for queue_id, name in sorted(names.items(), key=lambda kv: kv[1])
    }
