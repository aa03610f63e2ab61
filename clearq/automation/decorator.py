"""``PipelineDecorator``: ClearML's function pipelines, each call of a component a task.

    from clearq.automation import PipelineDecorator

    @PipelineDecorator.component(return_values=["data"], cache=True)
    def load(url): ...

    @PipelineDecorator.component(return_values=["model"])
    def train(data, epochs=3): ...

    @PipelineDecorator.pipeline(name="train pipeline", project="examples", version="1.0")
    def run(url, epochs=3):
        data = load(url)
        model = train(data, epochs=epochs)   # waits for `load` in the claim, not here
        print(model.score)                   # using a value waits for its step

    PipelineDecorator.set_default_execution_queue("default")
    run(url="https://example.com/data.csv")

Inside a pipeline function, a call to a component creates a function task (its source,
its keyword arguments as ``kwargs/<name>`` parameters) and enqueues it with the steps
whose results it takes as dependencies in the claim; the call returns at once with lazy
results. A lazy result passed to another component is that step's artifact, loaded as
the object where the next step runs; used in the pipeline's own code, it waits for its
step and loads the artifact. The pipeline function's logic runs on
``pipeline_execution_queue`` (a task of its own, as ClearML runs it; ``None``: here) —
``PipelineDecorator.run_locally()`` runs the logic here and every step here too, one
after another (``clearq task run``); ``debug_pipeline()`` calls the functions in
process, with no tasks at all.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from clearq import Task
from clearq.automation.lazy import LazyResult
from clearq.automation.local_run import run_here
from clearq.enums import FINAL_STATUSES, TaskStatus
from clearq.errors import InvalidInput

F = TypeVar("F", bound=Callable[..., Any])
STEP_TAG = "pipeline-step"
CACHE_TAG_PREFIX = "cache:"
DEFAULT_RETURN = ("return_object",)


@dataclass(frozen=True)
class Component:
    """A decorated function and how each of its calls runs."""

    function: Callable[..., Any]
    name: str
    return_values: tuple[str, ...]
    cache: bool
    packages: tuple[str, ...]
    queue: str | None
    parents: tuple[str, ...]


class PipelineDecorator:
    """ClearML's decorators: ``component`` makes steps, ``pipeline`` runs their logic."""

    _default_queue: ClassVar[str | None] = None
    _mode: ClassVar[str] = "remote"
    _current: ClassVar[_PipelineRun | None] = None

    @classmethod
    def set_default_execution_queue(cls, default_execution_queue: str | None) -> None:
        """The queue of every component that names none (else ``default``)."""
        cls._default_queue = default_execution_queue

    @classmethod
    def run_locally(cls) -> None:
        """Run the pipeline logic here and each step here too, one after another."""
        cls._mode = "local"

    @classmethod
    def debug_pipeline(cls) -> None:
        """Call the components as plain functions, in this process (no tasks)."""
        cls._mode = "debug"

    @classmethod
    def component(
        cls,
        _func: Callable[..., Any] | None = None,
        *,
        return_values: Sequence[str] = DEFAULT_RETURN,
        name: str | None = None,
        cache: bool = False,
        packages: Sequence[str] | None = None,
        parents: Sequence[str] | None = None,
        execution_queue: str | None = None,
    ) -> Any:
        """Make a function a pipeline step: each call inside a pipeline becomes a task."""

        def decorate(func: F) -> F:
            spec = Component(
                function=func,
                name=name or func.__name__,
                return_values=tuple(return_values),
                cache=cache,
                packages=tuple(packages or ()),
                queue=execution_queue,
                parents=tuple(parents or ()),
            )

            @functools.wraps(func)
            def call(*args: Any, **kwargs: Any) -> Any:
                run = cls._current
                if run is None or cls._mode == "debug":
                    return func(*args, **kwargs)
                return run.call(spec, args, kwargs)

            call.__clearq_component__ = spec  # type: ignore[attr-defined]
            return call  # type: ignore[return-value]

        return decorate(_func) if _func is not None else decorate

    @classmethod
    def pipeline(
        cls,
        _func: Callable[..., Any] | None = None,
        *,
        name: str,
        project: str,
        version: str | None = None,
        default_queue: str | None = None,
        pipeline_execution_queue: str | None = "services",
    ) -> Any:
        """Make a function a pipeline: its calls to components are its steps."""

        def decorate(func: F) -> F:
            @functools.wraps(func)
            def run(*args: Any, **kwargs: Any) -> Any:
                if cls._mode == "debug":
                    return func(*args, **kwargs)
                queue = default_queue or cls._default_queue or "default"
                remote = pipeline_execution_queue if cls._mode == "remote" else None
                controller = _controller(project, name, remote)
                cls._current = _PipelineRun(controller, queue, local=cls._mode == "local")
                try:
                    result = func(*args, **kwargs)
                    cls._current.finish()
                finally:
                    cls._current = None
                return result

            return run  # type: ignore[return-value]

        return decorate(_func) if _func is not None else decorate


def _controller(project: str, name: str, queue: str | None) -> Task:
    """The pipeline's own task: this run's, sent to ``queue`` first when run by hand."""
    task = Task.current_task() or Task.init(
        project_name=project, task_name=name, task_type=Task.TaskTypes.controller
    )
    if queue is not None and Task.running_locally():
        task.execute_remotely(queue_name=queue)  # exits; the agent runs the logic
    return task


class _PipelineRun:
    """One run of a decorated pipeline: the steps its calls made."""

    def __init__(self, controller: Task, queue: str, *, local: bool) -> None:
        self._controller = controller
        self._queue = queue
        self._local = local
        self._steps: dict[str, Task] = {}
        self._counts: dict[str, int] = {}

    def call(self, spec: Component, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Create (or reuse from the cache) the step of one call; its lazy results."""
        bound = inspect.signature(spec.function).bind(*args, **kwargs)
        parents: dict[str, Task] = {}
        values = {k: self._argument(v, parents) for k, v in bound.arguments.items()}
        for named in spec.parents:
            if named not in self._steps:
                raise InvalidInput(f"component {spec.name!r}: no earlier step named {named!r}")
            parents[named] = self._steps[named]
        step_name = self._step_name(spec.name)
        task = self._cached(spec, values) if spec.cache else None
        if task is None:
            task = self._create(spec, step_name, values)
            queue = spec.queue or self._queue
            task.enqueue(queue, depends_on=list(parents.values()))
            if self._local:
                run_here(task)
        self._steps[step_name] = task
        results = tuple(LazyResult(task, n, _fetch) for n in spec.return_values)
        return results[0] if len(results) == 1 else results

    def _argument(self, value: Any, parents: dict[str, Task]) -> Any:
        if isinstance(value, LazyResult):
            parents[value.task.name] = value.task
            return Task.artifact_input(value.task, value.artifact)
        try:
            json.dumps(value)
        except TypeError as e:
            raise InvalidInput(
                f"a component's argument must be JSON or a component's result: {e}"
            ) from e
        return value

    def _step_name(self, base: str) -> str:
        count = self._counts.get(base, 0)
        self._counts[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def _create(self, spec: Component, step_name: str, values: dict[str, Any]) -> Task:
        tags = [STEP_TAG]
        if spec.cache:
            tags.append(f"{CACHE_TAG_PREFIX}{_fingerprint(spec, values)}")
        return Task.create_function(
            spec.function,
            project_name=self._controller.project,
            task_name=step_name,
            kwargs=values,
            return_names=spec.return_values,
            packages=spec.packages,
            parent=self._controller,
            tags=tags,
            task_type="pipeline-step",
        )

    def _cached(self, spec: Component, values: dict[str, Any]) -> Task | None:
        tag = f"{CACHE_TAG_PREFIX}{_fingerprint(spec, values)}"
        found = Task.get_tasks(tags=[tag], task_filter={"status": ["completed"]}, limit=1)
        return found[0] if found else None

    def finish(self) -> None:
        """Wait for every step; raise naming the steps that did not complete."""
        bad = []
        for name, task in self._steps.items():
            status = task.wait_for_status(raise_on_status=(), status=tuple(FINAL_STATUSES))
            if status is not TaskStatus.COMPLETED:
                bad.append(f"{name} ({status})")
        if bad:
            raise RuntimeError(f"pipeline steps did not complete: {', '.join(bad)}")


def _fetch(task: Task, artifact: str) -> Any:
    """A step's artifact, once the step has completed."""
    status = task.wait_for_status(raise_on_status=(), status=tuple(FINAL_STATUSES))
    if status is not TaskStatus.COMPLETED:
        reason = task.data.status_reason or "no reason"
        raise RuntimeError(f"step {task.name!r} ({task.id}) ended {status}: {reason}")
    found = task.artifacts.get(artifact)
    if found is None:
        raise RuntimeError(f"step {task.name!r} stored no return value {artifact!r}")
    return found.get()


def _fingerprint(spec: Component, values: dict[str, Any]) -> str:
    source = inspect.getsource(spec.function)
    blob = json.dumps(
        {"source": source, "kwargs": values, "packages": list(spec.packages)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


__all__ = ["PipelineDecorator"]
