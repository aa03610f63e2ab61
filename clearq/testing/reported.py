"""The in-memory twin of what a run reports beyond logs and scalars, and of its models.

``MemoryReported`` reads plots and debug samples back as ``clearq.scheduler.Reported``
does, and ``MemoryRegistry`` keeps the models a run stored as ``ModelRegistry`` does. The
writes are a run's (``MemoryOutputs.append_batch`` and the registry's ``save``), fenced
like every write of an attempt. ``tests/contract`` holds both to the real store's answers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from clearq.errors import NotFound
from clearq.models import DebugSample, Fence, ModelRecord, ReportedPlot
from clearq.scheduler.reported import last_iterations
from clearq.scheduler.runlink_results import PlotRow, SampleRow, check_rows
from clearq.testing.state import State


def record_results(
    s: State, fence: Fence, plots: Sequence[PlotRow], samples: Sequence[SampleRow]
) -> None:
    """Keep a batch's plots and samples (the caller holds the lock and the fence).

    A sample written to a file that an earlier sample of the task named replaces that
    row, as the store's forget-then-insert does (``max_image_history`` reuses files).
    """
    check_rows(plots, samples)
    for p in plots:
        plot = ReportedPlot(
            id=next(s.ids),
            attempt=fence.attempt,
            title=p.title,
            series=p.series,
            iteration=p.iteration,
            kind=p.kind,
            figure=json.loads(p.figure),
            at=s.now(),
        )
        s.plots.append((fence.task_id, plot))
    newest = {r.uri: r for r in samples}
    if newest:
        s.samples = [(t, d) for t, d in s.samples if not (t == fence.task_id and d.uri in newest)]
    for r in newest.values():
        sample = DebugSample(
            id=next(s.ids),
            attempt=fence.attempt,
            title=r.title,
            series=r.series,
            iteration=r.iteration,
            kind=r.kind,
            uri=r.uri,
            content_type=r.content_type,
            size=r.size,
            at=s.now(),
        )
        s.samples.append((fence.task_id, sample))


def forget_results(s: State, gone: set[uuid.UUID]) -> None:
    """Drop the plots, samples and models of these tasks (a reset or a delete; the lock
    is held)."""
    s.plots = [(t, p) for t, p in s.plots if t not in gone]
    s.samples = [(t, d) for t, d in s.samples if t not in gone]
    s.models = {i: m for i, m in s.models.items() if m.task_id not in gone}


def result_files(s: State, gone: set[uuid.UUID]) -> list[str]:
    """The files the samples and models of these tasks name (deleting them frees those)."""
    files = [d.uri for t, d in s.samples if t in gone]
    return files + [m.uri for m in s.models.values() if m.task_id in gone and m.uri]


class MemoryReported:
    """Plots and debug samples of tasks, in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

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
        with self._s.lock:
            latest = self._latest(task_id)
            found = [
                p
                for t, p in self._s.plots
                if t == task_id
                and p.attempt == latest
                and title in (None, p.title)
                and series in (None, p.series)
            ]
        return found if max_iterations is None else last_iterations(found, max_iterations)

    def samples(
        self, task_id: uuid.UUID, *, title: str | None = None, series: str | None = None
    ) -> list[DebugSample]:
        """The debug samples of the latest attempt, by title, series and iteration."""
        with self._s.lock:
            latest = self._latest(task_id)
            found = [
                d
                for t, d in self._s.samples
                if t == task_id
                and d.attempt == latest
                and title in (None, d.title)
                and series in (None, d.series)
            ]
        return sorted(found, key=lambda d: (d.title, d.series, d.iteration, d.id))

    def _latest(self, task_id: uuid.UUID) -> int | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else task.attempt


class MemoryRegistry:
    """The models of tasks, in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    def save(self, fence: Fence, model: ModelRecord) -> ModelRecord:
        """Create or update ``model`` (by id) as the fenced attempt's; LeaseLost if not."""
        s = self._s
        with s.lock:
            s.hold(fence)
            known = s.models.get(model.id)
            now = s.now()
            if known is not None and known.task_id != fence.task_id:
                # The store's update matches (id, task) only, and its insert then fails on
                # the id: another task's model is never changed.
                raise NotFound(f"model {model.id} is another task's")
            created = known.created_at if known is not None else now
            saved = model.model_copy(
                update={"task_id": fence.task_id, "created_at": created, "updated_at": now}
            )
            s.models[model.id] = saved
            return saved

    def get(self, model_id: uuid.UUID) -> ModelRecord:
        """A model by id; NotFound when there is none."""
        with self._s.lock:
            found = self._s.models.get(model_id)
        if found is None:
            raise NotFound(f"no model with id {model_id}")
        return found

    def find(self, name: str, *, project: str | None = None) -> ModelRecord:
        """The newest model named ``name`` (of a task in ``project``, when given)."""
        with self._s.lock:
            named = [
                m
                for m in self._s.models.values()
                if m.name == name and (project is None or self._project_of(m.task_id) == project)
            ]
        if not named:
            where = f" in project {project!r}" if project is not None else ""
            raise NotFound(f"no model named {name!r}{where}")
        return max(named, key=lambda m: (m.updated_at or m.created_at, m.name))

    def of_task(self, task_id: uuid.UUID) -> list[ModelRecord]:
        """A task's models, oldest first."""
        with self._s.lock:
            found = [m for m in self._s.models.values() if m.task_id == task_id]
        return sorted(found, key=lambda m: (m.created_at, m.name))

    def _project_of(self, task_id: uuid.UUID) -> str | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else task.project


__all__ = ["MemoryRegistry", "MemoryReported", "forget_results", "record_results", "result_files"]
