"""Time windows cut into buckets, in SQL that means the same on both dialects.

A :class:`Window` is the last ``range`` seconds on the database's clock, cut into
``buckets`` equal steps. Times become epoch seconds (``epoch``), a bucket number
(``bucket``), or a row per bucket (``grid``); ``spans`` turns ``task_events`` into the
stretches tasks spent in one status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.models import TaskStatus
from clearq.scheduler.schema import db_now, task_events, tasks

MAX_BUCKETS = 1000
SLACK_SECONDS = 0.001
"""SQLite keeps milliseconds and converts through julian days: an event "now" may read a
hair past the window's end, so upper bounds are this much generous."""
_UNIX_EPOCH_JULIAN_DAY = 2440587.5


@dataclass(frozen=True)
class Window:
    """The last ``range`` seconds before ``now``, in ``buckets`` steps of ``step`` seconds."""

    start: datetime
    now: datetime
    step: float
    buckets: int
    postgres: bool

    @classmethod
    def ending_now(
        cls, conn: Connection, range_seconds: float, buckets: int, *, postgres: bool
    ) -> Window:
        """The window ending at the database's current time."""
        buckets = max(1, min(buckets, MAX_BUCKETS))
        now = conn.execute(sa.select(db_now())).scalar_one()
        start = now - timedelta(seconds=range_seconds)
        step = range_seconds / buckets
        return cls(start=start, now=now, step=step, buckets=buckets, postgres=postgres)

    @property
    def first(self) -> float:
        """The window's start, in epoch seconds."""
        return self.start.timestamp()

    def at(self, index: int) -> datetime:
        """When bucket ``index`` starts."""
        return self.start + timedelta(seconds=index * self.step)

    def end_of(self, index: Any) -> Any:
        """When bucket ``index`` (a number or a SQL expression) ends, in epoch seconds."""
        return self.first + (index + 1) * self.step + SLACK_SECONDS

    def epoch(self, column: Any) -> sa.ColumnElement[float]:
        """A timestamp column as epoch seconds."""
        if self.postgres:
            return sa.cast(sa.extract("epoch", column), sa.Float)
        return (sa.func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * 86400.0

    def bucket(self, seconds: Any) -> sa.ColumnElement[int]:
        """The bucket number of an epoch-seconds expression at or after the start.

        A time a hair past the window's end (SQLite's millisecond rounding, see
        ``SLACK_SECONDS``) counts in the last bucket rather than in none.
        """
        offset = (seconds - self.first) / self.step
        if self.postgres:
            number: sa.ColumnElement[int] = sa.cast(sa.func.floor(offset), sa.Integer)
        else:
            number = sa.cast(offset, sa.Integer)  # truncates, which is floor here (offset >= 0)
        return sa.case((number >= self.buckets, self.buckets - 1), else_=number)

    def grid(self) -> sa.CTE:
        """Bucket numbers ``0 .. buckets-1``, as rows of column ``i``."""
        grid = sa.select(sa.literal(0, sa.Integer).label("i")).cte("grid", recursive=True)
        return grid.union_all(sa.select(grid.c.i + 1).where(grid.c.i < self.buckets - 1))

    def spans(self, status: TaskStatus) -> sa.Subquery:
        """Stretches tasks spent in ``status`` that overlap the window, in epoch seconds.

        Columns: task_id, worker, queue_id (the task's queue now), since, until (None
        while it lasts) and next_status. Only the events of tasks with an event in the
        window, or still in ``status``, are read.
        """
        ev = task_events.c
        recent = sa.select(ev.task_id).where(ev.at >= self.start)
        current = sa.select(tasks.c.id).where(tasks.c.status == status.value)
        stretches = (
            sa.select(
                ev.task_id,
                ev.status,
                ev.worker,
                tasks.c.queue_id,
                self.epoch(ev.at).label("since"),
                self.epoch(_next(ev.at)).label("until"),
                _next(ev.status).label("next_status"),
            )
            .join(tasks, tasks.c.id == ev.task_id)
            .where(sa.or_(ev.task_id.in_(recent), ev.task_id.in_(current)))
            .subquery()
        )
        s = stretches.c
        overlapping = sa.or_(s.until.is_(None), s.until >= self.first)
        return sa.select(stretches).where(s.status == status.value, overlapping).subquery()


def _next(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The value of ``column`` at the task's next event."""
    return sa.func.lead(column).over(partition_by=task_events.c.task_id, order_by=task_events.c.id)
