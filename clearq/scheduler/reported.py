"""Reading back what runs reported beyond scalars: plots and debug samples.

The rows are written by a run's link (``runlink_results``), fenced like its scalars; these
reads are the Store's, for the SDK (``get_reported_plots``, ``get_debug_samples``) and the
page. Like scalars, they show the task's latest attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from clearq.errors import NotFound
from clearq.models import DebugSample, ReportedPlot, ScalarSummary
from clearq.scheduler.engine import Database
from clearq.scheduler.schema import task_plots, task_samples, task_scalar_summary, tasks

SUMMARY_BATCH = 500
"""Tasks per query when comparing many tasks' summaries (bounded IN lists)."""


def _latest(task_id: uuid.UUID) -> sa.ScalarSelect[Any]:
    return sa.select(tasks.c.attempt).where(tasks.c.id == task_id).scalar_subquery()


class Reported:
    """Plots and debug samples of tasks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def plots(
        self,
        task_id: uuid.UUID,
        *,
        title: str | None = None,
        series: str | None = None,
        max_iterations: int | None = None,
    ) -> list[ReportedPlot]:
        """The plots of the latest attempt, in report order; with ``max_iterations``, only
        those of each (title, series)'s last that many iterations."""
        p = task_plots.c
        query = sa.select(task_plots).where(p.task_id == task_id, p.attempt == _latest(task_id))
        if title is not None:
            query = query.where(p.title == title)
        if series is not None:
            query = query.where(p.series == series)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(p.id)).all()
        plots = [_plot(r) for r in rows]
        return plots if max_iterations is None else last_iterations(plots, max_iterations)

    def plot_index(self, task_id: uuid.UUID) -> list[dict[str, Any]]:
        """The newest plot of each (title, series) of the latest attempt, in first-report
        order, without its figure (the page fetches a figure only when it changed)."""
        p = task_plots.c
        query = (
            sa.select(p.id, p.title, p.series, p.iteration, p.kind)
            .where(p.task_id == task_id, p.attempt == _latest(task_id))
            .order_by(p.id)
        )
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        with self._db.read() as conn:
            for r in conn.execute(query):
                key = (r.title, r.series)
                known = newest.get(key)
                if known is None or (r.iteration, r.id) >= (known["iteration"], known["id"]):
                    newest[key] = dict(r._mapping)
        return list(newest.values())

    def plot(self, task_id: uuid.UUID, plot_id: int) -> ReportedPlot:
        """One plot of a task; NotFound when the task has no such plot."""
        p = task_plots.c
        query = sa.select(task_plots).where(p.task_id == task_id, p.id == plot_id)
        with self._db.read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFound(f"task {task_id} has no plot {plot_id}")
        return _plot(row)

    def samples(
        self,
        task_id: uuid.UUID,
        *,
        title: str | None = None,
        series: str | None = None,
    ) -> list[DebugSample]:
        """The debug samples of the latest attempt, by title, series and iteration."""
        s = task_samples.c
        query = sa.select(task_samples).where(s.task_id == task_id, s.attempt == _latest(task_id))
        if title is not None:
            query = query.where(s.title == title)
        if series is not None:
            query = query.where(s.series == series)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(s.title, s.series, s.iteration, s.id)).all()
        return [_sample(r) for r in rows]

    def sample(self, task_id: uuid.UUID, sample_id: int) -> DebugSample:
        """One debug sample of a task; NotFound when the task has no such sample."""
        s = task_samples.c
        query = sa.select(task_samples).where(s.task_id == task_id, s.id == sample_id)
        with self._db.read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFound(f"task {task_id} has no debug sample {sample_id}")
        return _sample(row)

    def summaries(
        self, task_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[tuple[str, str], ScalarSummary]]:
        """Last, min and max of every (title, series) of many tasks, for comparing them."""
        found: dict[uuid.UUID, dict[tuple[str, str], ScalarSummary]] = {t: {} for t in task_ids}
        c = task_scalar_summary.c
        with self._db.read() as conn:
            for start in range(0, len(task_ids), SUMMARY_BATCH):
                batch = list(task_ids[start : start + SUMMARY_BATCH])
                rows = conn.execute(sa.select(task_scalar_summary).where(c.task_id.in_(batch)))
                for r in rows:
                    found[r.task_id][(r.title, r.series)] = ScalarSummary(
                        title=r.title,
                        series=r.series,
                        last=r.last,
                        min=r.min,
                        max=r.max,
                        last_iteration=r.last_iteration,
                    )
        return found


def _plot(r: Any) -> ReportedPlot:
    return ReportedPlot(
        id=r.id,
        attempt=r.attempt,
        title=r.title,
        series=r.series,
        iteration=r.iteration,
        kind=r.kind,
        figure=dict(r.figure),
        at=r.at,
    )


def _sample(r: Any) -> DebugSample:
    return DebugSample(
        id=r.id,
        attempt=r.attempt,
        title=r.title,
        series=r.series,
        iteration=r.iteration,
        kind=r.kind,
        uri=r.uri,
        content_type=r.content_type,
        size=r.size,
        at=r.at,
    )


def last_iterations(plots: list[ReportedPlot], keep: int) -> list[ReportedPlot]:
    """Only the plots of each (title, series)'s last ``keep`` iterations, in their order."""
    iterations: dict[tuple[str, str], set[int]] = {}
    for p in plots:
        iterations.setdefault((p.title, p.series), set()).add(p.iteration)
    kept = {key: set(sorted(its)[-keep:]) for key, its in iterations.items()}
    return [p for p in plots if p.iteration in kept[(p.title, p.series)]]
