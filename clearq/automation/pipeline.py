"""Pipelines as dependencies in the claim: no controller process, state in rows.

    pipe = Pipeline("train-eval", project="mnist")
    pipe.add_step("prepare", base_task=prepare_task)
    pipe.add_step("train", base_task=train_task, parents=["prepare"],
                  parameter_override={"General/data": "${prepare.artifacts.data.url}"})
    pipe.add_function_step("report", summarise, {"model": "${train.id}"}, parents=["train"])
    pipe.start(queue="default")   # enqueues the whole DAG at once and returns
    pipe.wait()

``start`` creates the pipeline's record (a task of type ``pipeline`` whose parameters map
``Pipeline/steps/<name>`` to each step's task) and enqueues every step with its parents
as dependencies: the claim hands a step out only once its parents have completed, a
failed parent skips its children, the agent resolves ``${step.…}`` references just
before the step runs. Nothing here needs to keep running: if the script that started
the pipeline dies, the pipeline goes on; running the script again (``start`` with the
same name and project) picks up the unfinished run, keeps the steps that completed and
sends the others again. ``rerun(from_step)`` runs a step and its descendants again.
Steps with ``cache_executed_step=True`` reuse a completed task with the same code,
parameters and inputs (``start(force=True)`` runs them anyway).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clearq.automation.pipeline_steps import (
    CACHE_TAG_PREFIX,
    Step,
    descendants,
    topological,
)
from clearq.errors import InvalidInput, WaitTimeout
from clearq.models import FINAL_STATUSES, STEP_KEY_PREFIX, TaskSpec, TaskStatus
from clearq.ports import ControllerStore
from clearq.sdk import Task, default_store
from clearq.sdk import parameters as params

PIPELINE_TYPE = "pipeline"
PIPELINE_TAG = "clearq-pipeline"
WAIT_POLL_SECONDS = 0.5
_REDO = frozenset({TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.SKIPPED})


class Pipeline:
    """A DAG of steps, run by agents through dependencies in the claim."""

    def __init__(self, name: str, project: str, *, default_queue: str = "default") -> None:
        self.name = name
        self.project = project
        self.default_queue = default_queue
        self._steps: dict[str, Step] = {}
        self._record: uuid.UUID | None = None
        self._tasks: dict[str, uuid.UUID] = {}

    # ---- describing ---------------------------------------------------------------------

    def add_step(
        self,
        name: str,
        base_task: Task | str | uuid.UUID,
        *,
        parents: Sequence[str] = (),
        parameter_override: Mapping[str, Any] | None = None,
        queue: str | None = None,
        cache_executed_step: bool = False,
        max_retries: int = 0,
        retry_delay_seconds: float | None = None,
        continue_on_failure: bool = False,
        time_limit: float | None = None,
        hold: bool = False,
    ) -> None:
        """A step that runs a clone of ``base_task`` with ``parameter_override`` applied.

        A step with ``hold`` is created by ``start`` but waits, a draft, for ``release``.
        """
        base = base_task if isinstance(base_task, Task) else Task.get_task(task_id=base_task)
        self._add(
            Step(
                name=name,
                parents=tuple(parents),
                queue=queue,
                base_task=base.reload().data,
                parameter_override=dict(parameter_override or {}),
                cache=cache_executed_step,
                max_retries=max_retries,
                retry_delay_seconds=retry_delay_seconds,
                continue_on_failure=continue_on_failure,
                time_limit=time_limit,
                hold=hold,
            )
        )

    def add_function_step(
        self,
        name: str,
        function: Callable[..., Any],
        function_kwargs: Mapping[str, Any] | None = None,
        function_return: Sequence[str] = ("result",),
        *,
        parents: Sequence[str] = (),
        queue: str | None = None,
        packages: Sequence[str] = (),
        cache_executed_step: bool = False,
        max_retries: int = 0,
        retry_delay_seconds: float | None = None,
        continue_on_failure: bool = False,
        time_limit: float | None = None,
        hold: bool = False,
    ) -> None:
        """A step that calls ``function(**function_kwargs)``; its result becomes artifacts.

        The function must stand alone (a top-level function that imports what it uses
        inside its body); ``packages`` are its requirements. Each name in
        ``function_return`` names an artifact (one name: the whole result).
        """
        self._add(
            Step(
                name=name,
                parents=tuple(parents),
                queue=queue,
                function=function,
                function_kwargs=dict(function_kwargs or {}),
                function_return=tuple(function_return),
                packages=tuple(packages),
                cache=cache_executed_step,
                max_retries=max_retries,
                retry_delay_seconds=retry_delay_seconds,
                continue_on_failure=continue_on_failure,
                time_limit=time_limit,
                hold=hold,
            )
        )

    def _add(self, step: Step) -> None:
        if step.name in self._steps:
            raise InvalidInput(f"the pipeline has a step named {step.name!r} already")
        if "/" in step.name or "." in step.name or not step.name:
            raise InvalidInput(f"step name {step.name!r}: use letters, digits, - and _")
        self._steps[step.name] = step

    # ---- running ----------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The pipeline run's record id, once started."""
        return None if self._record is None else str(self._record)

    def start(self, queue: str | None = None, *, force: bool = False) -> Pipeline:
        """Enqueue every step (resuming this pipeline's unfinished run); return at once."""
        order = topological(self._steps)
        store = _store()
        self._record, self._tasks = self._open_run(store)
        keys: dict[str, str] = {}
        for name in order:
            self._start_step(store, self._steps[name], queue, force, keys)
        return self

    def _open_run(self, store: ControllerStore) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
        for record in store.tasks.list(project=self.project, name=self.name, tags=[PIPELINE_TAG]):
            steps = _step_map(record.parameters)
            if any(store.tasks.get(t).status is not TaskStatus.COMPLETED for t in steps.values()):
                return record.id, steps
            if not steps:
                return record.id, steps
            break  # the newest run finished: this start is a new run
        spec = TaskSpec(
            project=self.project, name=self.name, type=PIPELINE_TYPE, tags=(PIPELINE_TAG,)
        )
        return store.tasks.create(spec).id, {}

    def _start_step(
        self,
        store: ControllerStore,
        step: Step,
        queue: str | None,
        force: bool,
        keys: dict[str, str],
    ) -> None:
        assert self._record is not None
        inputs = [keys.get(p, str(self._tasks.get(p))) for p in step.parents]
        key = step.fingerprint(inputs)
        keys[step.name] = key
        task_id = self._tasks.get(step.name)
        if task_id is None and step.cache and not force:
            task_id = _cached(store, key)
        if task_id is None:
            spec = step.spec(project=self.project, pipeline_id=self._record, cache_key=key)
            task_id = store.tasks.create(spec).id
        self._map(store, step.name, task_id)
        status = store.tasks.get(task_id).status
        if status in _REDO:
            status = store.tasks.reset(task_id).status
        if status is TaskStatus.CREATED and not step.hold:
            store.queues.enqueue(
                task_id,
                step.queue or queue or self.default_queue,
                depends_on=[self._tasks[p] for p in step.parents],
                continue_on_failure=step.continue_on_failure,
            )

    def _map(self, store: ControllerStore, name: str, task_id: uuid.UUID) -> None:
        assert self._record is not None
        if self._tasks.get(name) == task_id:
            return
        self._tasks[name] = task_id
        store.tasks.update_parameters(self._record, {f"{STEP_KEY_PREFIX}{name}": str(task_id)})

    def release(
        self,
        name: str,
        parameter_override: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> None:
        """Enqueue a held step (``hold=True``), with more parameters set first."""
        step, task_id = self._held(name)
        store = _store()
        if parameter_override:
            overrides = {k: params.to_text(v) for k, v in parameter_override.items()}
            store.tasks.update_parameters(task_id, overrides)
        store.queues.enqueue(
            task_id,
            step.queue or queue or self.default_queue,
            depends_on=[self._tasks[p] for p in step.parents],
            continue_on_failure=step.continue_on_failure,
        )

    def skip(self, name: str, reason: str) -> None:
        """Mark a held step skipped, and the steps waiting on it after it."""
        _, task_id = self._held(name)
        _store().admin.skip(task_id, reason)

    def _held(self, name: str) -> tuple[Step, uuid.UUID]:
        step = self._steps.get(name)
        if step is None or not step.hold or name not in self._tasks:
            raise InvalidInput(f"pipeline {self.name!r} has no started held step {name!r}")
        return step, self._tasks[name]

    def steps(self) -> dict[str, Task]:
        """Each step's task, by step name (after ``start``)."""
        return {name: Task.get_task(task_id=tid) for name, tid in self._tasks.items()}

    def wait(self, timeout: float | None = None) -> dict[str, TaskStatus]:
        """Wait until every step has ended; each step's status."""
        store = _store()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            statuses = {n: store.tasks.get(t).status for n, t in self._tasks.items()}
            if all(s in FINAL_STATUSES for s in statuses.values()):
                return statuses
            if deadline is not None and time.monotonic() >= deadline:
                waiting = sorted(n for n, s in statuses.items() if s not in FINAL_STATUSES)
                raise WaitTimeout(f"pipeline {self.name!r}: steps {waiting} still not ended")
            time.sleep(WAIT_POLL_SECONDS)

    def rerun(self, from_step: str, *, queue: str | None = None) -> None:
        """Run ``from_step`` and every step after it again; the others keep their results."""
        if from_step not in self._steps or from_step not in self._tasks:
            raise InvalidInput(f"no started step named {from_step!r} in pipeline {self.name!r}")
        again = descendants(self._steps, from_step)
        store = _store()
        running = [n for n in again if store.tasks.get(self._tasks[n]).status.value == "running"]
        if running:
            raise InvalidInput(f"steps {sorted(running)} are running: wait for them or abort them")
        for name in topological(self._steps):
            if name not in again:
                continue
            task_id = self._tasks[name]
            status = store.tasks.get(task_id).status
            if status is TaskStatus.QUEUED:
                store.queues.dequeue(task_id)
            elif status in FINAL_STATUSES:
                store.tasks.reset(task_id)
        self.start(queue, force=True)


def _store() -> ControllerStore:
    """The SDK's store, as much of it as a pipeline uses."""
    return default_store()


def _step_map(parameters: Mapping[str, str]) -> dict[str, uuid.UUID]:
    return {
        key.removeprefix(STEP_KEY_PREFIX): uuid.UUID(value)
        for key, value in parameters.items()
        if key.startswith(STEP_KEY_PREFIX)
    }


def _cached(store: ControllerStore, key: str) -> uuid.UUID | None:
    found = store.tasks.list(status=TaskStatus.COMPLETED, tags=[f"{CACHE_TAG_PREFIX}{key}"])
    return found[0].id if found else None
