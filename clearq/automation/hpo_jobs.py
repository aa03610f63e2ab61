"""A trial's task: a clone of the base task with the trial's parameters, in a queue.

Everything here goes through the SDK's ``Task`` and the store's public repositories;
each poll is a few indexed reads (the task's row and its scalar summary, plus the
objective's points when a strategy wants every step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from clearq.automation.hpo_trials import Objective, Suggestion, TrialResult, TrialState
from clearq.enums import TaskStatus
from clearq.errors import InvalidInput
from clearq.models import ScalarSummary
from clearq.ports import ControllerStore
from clearq.sdk import Task, default_store

HPO_TAG = "hpo"
"""Every trial's task carries this tag, and ``hpo:<search name>``."""
HALT_TRIES = 3
"""A queued task may be claimed while we stop it: look again this many times."""


@dataclass(frozen=True)
class JobSpec:
    """How the optimizer launches each trial's task."""

    queue: str
    search_name: str
    time_limit_per_job: float | None = None
    project: str | None = None
    """The project trials are made in (ClearML's spawn_project); default: the base task's."""


class TrialJob:
    """One trial's task, as the optimizer watches it."""

    def __init__(self, suggestion: Suggestion, task: Task, objective: Objective) -> None:
        self.suggestion = suggestion
        self.task = task
        self._objective = objective
        self._steps_seen = 0
        self.stopped_early = False
        """True once the optimizer stopped it for passing max_iteration_per_job."""

    @classmethod
    def create(
        cls, base: Task, suggestion: Suggestion, spec: JobSpec, objective: Objective
    ) -> TrialJob:
        """Clone the base task as a draft with the trial's parameters (not enqueued yet)."""
        task = Task.clone(source_task=base, name=f"{base.name}: trial {suggestion.number}")
        task.set_parameters(dict(suggestion.parameters))
        store = _store()
        tags = (*task.data.tags, HPO_TAG, f"{HPO_TAG}:{spec.search_name}")
        store.tasks.edit(
            task.data.id,
            tags=tags,
            max_run_seconds=spec.time_limit_per_job,
        )
        if spec.project is not None:
            task.move_to_project(spec.project)
        return cls(suggestion, task.reload(), objective)

    @classmethod
    def attach(cls, suggestion: Suggestion, task_id: str, objective: Objective) -> TrialJob:
        """Watch the task of a trial started by an earlier run of the search."""
        return cls(suggestion, Task.get_task(task_id=task_id), objective)

    @property
    def task_id(self) -> str:
        """The trial's task id."""
        return self.task.id

    def status(self) -> TaskStatus:
        """The task's status, read now."""
        return self.task.status

    def summary(self) -> ScalarSummary | None:
        """The objective's last/min/max so far (one indexed read), if it reported any."""
        return self._objective.find(_store().outputs.summary(self.task.data.id))

    def new_steps(self) -> list[tuple[int, float]]:
        """(iteration, value) of the objective reported since the last call, in order."""
        points = _store().outputs.scalars(
            self.task.data.id, title=self._objective.title, series=self._objective.series
        )
        if len(points) < self._steps_seen:  # a new attempt started over
            self._steps_seen = 0
        fresh = points[self._steps_seen :]
        self._steps_seen = len(points)
        return [(p.iteration, p.value) for p in fresh]

    def past(self, max_iteration: int) -> bool:
        """True once the objective was reported for an iteration beyond ``max_iteration``."""
        row = self.summary()
        return row is not None and row.last_iteration > max_iteration

    def result(self, status: TaskStatus) -> TrialResult:
        """How the trial ended, from its task's final status and objective summary."""
        row = self.summary()
        done = TrialResult(
            number=self.suggestion.number,
            parameters=self.suggestion.parameters,
            state=TrialState.FAILED,
            task_id=self.task_id,
        )
        reason = self.task.data.status_reason
        if row is None or status not in (TaskStatus.COMPLETED, TaskStatus.STOPPED):
            why = reason or f"its task is {status}"
            if row is None and status is TaskStatus.COMPLETED:
                why = f"it never reported {self._objective.title}/{self._objective.series}"
            return replace(done, reason=why)
        if self.stopped_early:
            reason = f"stopped after iteration {row.last_iteration} (max_iteration_per_job)"
        elif status is TaskStatus.STOPPED:
            reason = f"stopped: {reason or 'by request'}"
        return replace(
            done,
            state=TrialState.COMPLETED,
            objective=self._objective.value(row),
            iteration=row.last_iteration,
            reason=reason,
        )

    def aborted(self, reason: str) -> TrialResult:
        """The result of a trial the optimizer gave up on (it does not count)."""
        s = self.suggestion
        return TrialResult(s.number, s.parameters, TrialState.ABORTED, self.task_id, reason=reason)

    def pruned(self, step: int, value: float) -> TrialResult:
        """The result of a trial the strategy pruned at ``step``."""
        s = self.suggestion
        return TrialResult(
            s.number,
            s.parameters,
            TrialState.PRUNED,
            self.task_id,
            iteration=step,
            reason=f"pruned at iteration {step} (value {value})",
        )

    def halt(self) -> None:
        """Stop the task: dequeue it when queued, ask its run to stop when running."""
        for _ in range(HALT_TRIES):
            status = self.task.status
            try:
                if status is TaskStatus.QUEUED:
                    self.task.dequeue()
                elif status is TaskStatus.RUNNING:
                    self.task.mark_stopped()
                return
            except InvalidInput:
                continue  # it moved on between the read and the request: look again
        raise InvalidInput(f"task {self.task_id} kept changing status while being stopped")


def discard_orphan_drafts(search_name: str, known: set[str]) -> list[str]:
    """Delete the search's trial drafts that no trial names, and return their ids.

    A search process killed between cloning a trial's task and recording its id on the
    trial leaves such a draft: never enqueued, and its trial was told failed on resume,
    so keeping it would only add a task that no trial will ever run.
    """
    drafts = _store().tasks.list(
        tags=[f"{HPO_TAG}:{search_name}"], status=TaskStatus.CREATED, limit=10_000
    )
    orphans = [str(t.id) for t in drafts if str(t.id) not in known]
    for task_id in orphans:
        Task.get_task(task_id=task_id).delete(raise_on_error=True)
    return orphans


def _store() -> ControllerStore:
    """The SDK's store, as much of it as a trial uses."""
    return default_store()


__all__ = ["HPO_TAG", "JobSpec", "TrialJob", "discard_orphan_drafts"]
