"""What a run produces: console logs, scalars (with an O(1) summary) and artifacts.

Writes are batched by the caller and fenced: each batch is one transaction that first
checks the attempt is still the writer's. The writes are ``fenced.append``, the same a run
started by hand makes over its bare connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa

from clearq.models import Artifact, Fence, LogLine, ScalarPoint, ScalarSummary
from clearq.scheduler import fenced
from clearq.scheduler.engine import Database
from clearq.scheduler.rows import hold
from clearq.scheduler.runlink_results import PlotRow, SampleRow
from clearq.scheduler.schema import (
    db_now,
    task_artifacts,
    task_logs,
    task_scalar_summary,
    task_scalars,
    tasks,
)
from clearq.scheduler.sqla_exec import on

STREAMS = fenced.LOG_STREAMS


class Outputs:
    """Logs, scalars and artifacts of tasks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append_logs(self, fence: Fence, lines: Sequence[tuple[str, str]]) -> None:
        """Append (stream, text) pieces to the attempt's log, in order (``fenced.append``)."""
        fenced.check_streams(lines)
        if not lines:
            return
        with self._db.write() as conn:
            fenced.append(on(conn), fence, lines, ())

    def append_batch(
        self,
        fence: Fence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[tuple[str, str, int, float]],
        *,
        plots: Sequence[PlotRow] = (),
        samples: Sequence[SampleRow] = (),
    ) -> None:
        """A run's batch of logs, scalars, plots and samples in one transaction, as a run
        by hand writes it (``fenced.append``): what a task's channel hands its agent."""
        if not (logs or points or plots or samples):
            return
        with self._db.write() as conn:
            fenced.append(on(conn), fence, logs, points, plots=plots, samples=samples)

    def logs(
        self,
        task_id: uuid.UUID,
        *,
        after: int = 0,
        attempt: int | None = None,
        limit: int = 10_000,
    ) -> list[LogLine]:
        """Log pieces with ``seq`` above ``after``, oldest first (all attempts unless given)."""
        query = (
            sa.select(task_logs)
            .where(task_logs.c.task_id == task_id, task_logs.c.id > after)
            .order_by(task_logs.c.id)
            .limit(limit)
        )
        if attempt is not None:
            query = query.where(task_logs.c.attempt == attempt)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            LogLine(seq=r.id, attempt=r.attempt, at=r.at, stream=r.stream, text=r.text)
            for r in rows
        ]

    def append_scalars(self, fence: Fence, points: Sequence[ScalarPoint]) -> None:
        """Append reported values and fold them into the per-series summary."""
        if not points:
            return
        folded = [(p.title, p.series, p.iteration, p.value) for p in points]
        with self._db.write() as conn:
            fenced.append(on(conn), fence, (), folded)

    def scalars(
        self, task_id: uuid.UUID, *, title: str | None = None, series: str | None = None
    ) -> list[ScalarPoint]:
        """The values reported by the task's latest attempt, in report order."""
        latest = sa.select(tasks.c.attempt).where(tasks.c.id == task_id).scalar_subquery()
        query = (
            sa.select(task_scalars)
            .where(task_scalars.c.task_id == task_id, task_scalars.c.attempt == latest)
            .order_by(task_scalars.c.id)
        )
        if title is not None:
            query = query.where(task_scalars.c.title == title)
        if series is not None:
            query = query.where(task_scalars.c.series == series)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            ScalarPoint(title=r.title, series=r.series, iteration=r.iteration, value=r.value)
            for r in rows
        ]

    def summary(self, task_id: uuid.UUID) -> list[ScalarSummary]:
        """Last, min and max of each (title, series) of the task's latest attempt."""
        query = (
            sa.select(task_scalar_summary)
            .where(task_scalar_summary.c.task_id == task_id)
            .order_by(task_scalar_summary.c.title, task_scalar_summary.c.series)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            ScalarSummary(
                title=r.title,
                series=r.series,
                last=r.last,
                min=r.min,
                max=r.max,
                last_iteration=r.last_iteration,
            )
            for r in rows
        ]

    def add_artifact(self, fence: Fence, artifact: Artifact) -> None:
        """Record an artifact of the attempt (by reference); the same name replaces it."""
        with self._db.write() as conn:
            hold(conn, fence)
            conn.execute(
                task_artifacts.delete().where(
                    task_artifacts.c.task_id == fence.task_id,
                    task_artifacts.c.name == artifact.name,
                )
            )
            conn.execute(
                task_artifacts.insert().values(
                    task_id=fence.task_id,
                    attempt=fence.attempt,
                    created_at=db_now(),
                    **artifact.model_dump(),
                )
            )

    def artifacts(self, task_id: uuid.UUID) -> list[Artifact]:
        """The task's artifacts, by name."""
        query = (
            sa.select(task_artifacts)
            .where(task_artifacts.c.task_id == task_id)
            .order_by(task_artifacts.c.name)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            Artifact(
                name=r.name,
                uri=r.uri,
                kind=r.kind,
                size=r.size,
                sha256=r.sha256,
                metadata=dict(r.metadata),
            )
            for r in rows
        ]
