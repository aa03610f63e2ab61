"""``PipelineController``: ClearML's pipeline class, a facade over :class:`Pipeline`.

    from clearq.automation import PipelineController

    pipe = PipelineController(name="pipeline demo", project="examples", version="1.0")
    pipe.add_parameter(name="url", default="https://example.com/data.csv")
    pipe.set_default_execution_queue("default")
    pipe.add_step(name="stage_data", base_task_project="examples", base_task_name="step 1",
                  parameter_override={"General/dataset_url": "${pipeline.url}"})
    pipe.add_step(name="stage_process", parents=["stage_data"],
                  base_task_project="examples", base_task_name="step 2",
                  parameter_override={"General/dataset_url": "${stage_data.artifacts.dataset.url}"})
    pipe.start()

The steps run as a clearq :class:`Pipeline`: enqueued at once with their parents as
dependencies in the claim, references (``${step.id}``, ``${step.parameters.X}``,
``${step.artifacts.X.url}``) resolved by the agent that runs each step; ``${pipeline.X}``
is a pipeline parameter, filled in at ``start``. No controller process is needed, unless
steps have ``pre_execute_callback`` / ``post_execute_callback``: those run in the process
that drives the pipeline (``start_locally()``, or the task ``start(queue)`` sends to that
queue, as ClearML runs its controller), and a step with a pre-execute callback is held
as a draft until its parents complete and the callback has seen it.

Units are ClearML's: ``pool_frequency`` and ``wait(timeout)`` in minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clearq.automation.controller_nodes import NodeSpec, PipelineNode
from clearq.automation.local_run import run_here
from clearq.automation.pipeline import Pipeline
from clearq.enums import FINAL_STATUSES, TaskStatus
from clearq.errors import InvalidInput
from clearq.sdk import Task

DEFAULT_POOL_FREQUENCY_MINUTES = 0.2
"""How often a controller process looks at its steps (ClearML's default, in minutes)."""
_GAVE_UP = frozenset({TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.SKIPPED})

PreExecute = Callable[["PipelineController", PipelineNode, dict[str, Any]], Any]
PostExecute = Callable[["PipelineController", PipelineNode], Any]


@dataclass
class _Control:
    """What the controller process still has to do for its callback steps."""

    released: set[str] = field(default_factory=set)
    post_called: set[str] = field(default_factory=set)


class PipelineController:
    """A pipeline of steps, described and started the way ClearML's controller is."""

    Node = PipelineNode

    def __init__(
        self,
        name: str,
        project: str,
        version: str | None = None,
        pool_frequency: float = DEFAULT_POOL_FREQUENCY_MINUTES,
        add_pipeline_tags: bool = False,
        target_project: str | None = None,
        abort_on_failure: bool = False,
        retry_on_failure: int | None = None,
    ) -> None:
        if not pool_frequency > 0:
            raise InvalidInput(
                f"pool_frequency is in minutes and must be positive: {pool_frequency}"
            )
        self.name = name
        self.project = project
        self.version = version
        if target_project not in (None, project) or add_pipeline_tags:
            raise InvalidInput(
                "target_project and add_pipeline_tags are not supported: the steps are tasks "
                f"of the pipeline's project ({project!r}), tagged as its steps"
            )
        self._pool_seconds = pool_frequency * 60.0
        self._abort_on_failure = abort_on_failure
        self._retries = retry_on_failure or 0
        self._nodes: dict[str, NodeSpec] = {}
        self._parameters: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}
        self._default_queue: str | None = None
        self._pipeline: Pipeline | None = None
        self._control = _Control()
        self._stop = threading.Event()
        self._local = False

    # ---- describing ---------------------------------------------------------------------

    def add_parameter(
        self,
        name: str,
        default: Any = None,
        description: str | None = None,
        param_type: str | None = None,
    ) -> None:
        """A pipeline parameter, referenced in steps as ``${pipeline.<name>}``."""
        self._parameters[name] = default
        if description:
            self._descriptions[name] = description

    def get_parameters(self) -> dict[str, Any]:
        """The pipeline's parameters and their values."""
        return dict(self._parameters)

    def set_default_execution_queue(self, default_execution_queue: str | None) -> None:
        """The queue of every step that names none (else ``default``)."""
        self._default_queue = default_execution_queue

    def add_step(
        self,
        name: str,
        base_task_id: str | None = None,
        parents: Sequence[str] | None = None,
        parameter_override: Mapping[str, Any] | None = None,
        execution_queue: str | None = None,
        base_task_project: str | None = None,
        base_task_name: str | None = None,
        continue_on_fail: bool = False,
        pre_execute_callback: PreExecute | None = None,
        post_execute_callback: PostExecute | None = None,
        cache_executed_step: bool = False,
        retry_on_failure: int | None = None,
        clone_base_task: bool = True,
    ) -> bool:
        """A step that runs a clone of a base task (by id, or by project and name)."""
        if not clone_base_task:
            raise InvalidInput(
                f"step {name!r}: clone_base_task=False is not supported; the base task is cloned"
            )
        if base_task_id is None:
            if base_task_name is None:
                raise InvalidInput(f"step {name!r}: give base_task_id or base_task_name")
            base = Task.get_task(project_name=base_task_project, task_name=base_task_name)
            base_task_id = base.id
        self._add(
            NodeSpec(
                name=name,
                base_task_id=base_task_id,
                parents=tuple(parents or ()),
                parameter_override=dict(parameter_override or {}),
                queue=execution_queue,
                continue_on_fail=continue_on_fail,
                pre_execute=pre_execute_callback,
                post_execute=post_execute_callback,
                cache=cache_executed_step,
                retries=self._retries if retry_on_failure is None else retry_on_failure,
            )
        )
        return True

    def add_function_step(
        self,
        name: str,
        function: Callable[..., Any],
        function_kwargs: Mapping[str, Any] | None = None,
        function_return: Sequence[str] | None = None,
        packages: Sequence[str] | None = None,
        execution_queue: str | None = None,
        parents: Sequence[str] | None = None,
        pre_execute_callback: PreExecute | None = None,
        post_execute_callback: PostExecute | None = None,
        cache_executed_step: bool = False,
        retry_on_failure: int | None = None,
        continue_on_fail: bool = False,
    ) -> bool:
        """A step that calls ``function(**function_kwargs)`` in a task of its own.

        Its return values become artifacts named by ``function_return``; a keyword
        argument ``"${step.name}"`` (or ``"${step.artifacts.name}"``) receives an
        earlier step's return value (artifact) as the object itself.
        """
        self._add(
            NodeSpec(
                name=name,
                function=function,
                function_kwargs=dict(function_kwargs or {}),
                function_return=tuple(function_return or ("return",)),
                packages=tuple(packages or ()),
                parents=tuple(parents or ()),
                queue=execution_queue,
                continue_on_fail=continue_on_fail,
                pre_execute=pre_execute_callback,
                post_execute=post_execute_callback,
                cache=cache_executed_step,
                retries=self._retries if retry_on_failure is None else retry_on_failure,
            )
        )
        return True

    def _add(self, node: NodeSpec) -> None:
        if node.name in self._nodes:
            raise InvalidInput(f"the pipeline has a step named {node.name!r} already")
        self._nodes[node.name] = node

    # ---- running ----------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The pipeline run's record id, once started."""
        return None if self._pipeline is None else self._pipeline.id

    def start(self, queue: str = "services", wait: bool = False) -> bool:
        """Start the pipeline: its steps go to their queues with their dependencies.

        Without callbacks nothing needs to keep running and this returns at once. With
        callbacks, run by hand, this script becomes a controller task sent to
        ``queue`` (and exits, as ClearML's does); the agent that runs it drives the
        callbacks until every step has ended.
        """
        callbacks = any(n.pre_execute or n.post_execute for n in self._nodes.values())
        self._local = False
        if callbacks and Task.running_locally():
            task = Task.current_task() or Task.init(
                project_name=self.project, task_name=self.name, task_type=Task.TaskTypes.controller
            )
            task.execute_remotely(queue_name=queue)
        self._launch()
        if callbacks:
            self._drive()
        elif wait:
            self.wait()
        return True

    def start_locally(self, run_pipeline_steps_locally: bool = False) -> None:
        """Drive the pipeline from this process until every step has ended.

        The steps run on agents, or with ``run_pipeline_steps_locally=True`` here, one
        after another as their parents complete (``clearq task run``; their queues must
        exist, and no agent should serve them meanwhile).
        """
        self._local = run_pipeline_steps_locally
        self._launch()
        self._drive()

    def _launch(self) -> None:
        if self._pipeline is not None:
            raise InvalidInput(f"pipeline {self.name!r} was started already")
        pipe = Pipeline(
            self.name, project=self.project, default_queue=self._default_queue or "default"
        )
        known = set(self._nodes)
        for node in self._nodes.values():
            node.add_to(
                pipe, known=known, parameters=self._parameters, nodes=self._nodes, hold=self._local
            )
        self._pipeline = pipe.start()

    def _drive(self) -> None:
        """Run the callbacks until every step has ended (here, or in a background thread)."""
        while not self._stop.is_set():
            if self._tick():
                return
            self._stop.wait(min(self._pool_seconds, 5.0))

    def _tick(self) -> bool:
        assert self._pipeline is not None
        tasks = self._pipeline.steps()
        statuses = {name: task.get_status() for name, task in tasks.items()}
        for name, node in self._nodes.items():
            if (node.held or self._local) and name not in self._control.released:
                self._maybe_release(name, node, statuses)
            status = statuses[name]
            if (
                node.post_execute
                and name not in self._control.post_called
                and status in (FINAL_STATUSES - {TaskStatus.SKIPPED})
            ):
                self._control.post_called.add(name)
                node.post_execute(self, self._node(name, tasks[name]))
            if self._abort_on_failure and status is TaskStatus.FAILED:
                self.stop()
                return True
        statuses = {name: task.get_status() for name, task in tasks.items()}
        return all(s in FINAL_STATUSES for s in statuses.values())

    def _maybe_release(self, name: str, node: NodeSpec, statuses: Mapping[str, TaskStatus]) -> None:
        assert self._pipeline is not None
        parents = [statuses[p] for p in node.all_parents(set(self._nodes))]
        if not node.continue_on_fail and any(s in _GAVE_UP for s in parents):
            self._control.released.add(name)
            self._pipeline.skip(name, "a step it depends on did not complete")
            return
        if not all(s in FINAL_STATUSES for s in parents):
            return
        self._control.released.add(name)
        task = self._pipeline.steps()[name]
        before = task.get_parameters()
        given = dict(before)
        pre = node.pre_execute
        if pre is not None and pre(self, self._node(name, task), given) is False:
            self._pipeline.skip(name, "its pre_execute_callback returned False")
            return
        changed = {k: v for k, v in given.items() if before.get(k) != v}
        self._pipeline.release(name, changed)
        if self._local:
            run_here(task)

    def _node(self, name: str, task: Task | None) -> PipelineNode:
        spec = self._nodes[name]
        return spec.view(
            task, queue=spec.queue or self._default_queue or "default", known=set(self._nodes)
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every step has ended; False if ``timeout`` (minutes) passed first."""
        if self._pipeline is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout * 60.0
        while True:
            statuses = [t.get_status() for t in self._pipeline.steps().values()]
            if all(s in FINAL_STATUSES for s in statuses):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(min(self._pool_seconds, 1.0))

    def stop(
        self, timeout: float | None = None, mark_failed: bool = False, mark_aborted: bool = False
    ) -> None:
        """Stop the pipeline: running steps are aborted, waiting ones leave their queues."""
        self._stop.set()
        if self._pipeline is None:
            return
        for task in self._pipeline.steps().values():
            status = task.get_status()
            if status is TaskStatus.RUNNING:
                task.mark_stopped()
            elif status is TaskStatus.QUEUED:
                task.dequeue()

    # ---- looking ----------------------------------------------------------------------

    def get_pipeline_dag(self) -> dict[str, PipelineNode]:
        """Every step as a node: its base task, parents, queue, parameters and task run."""
        tasks = self._pipeline.steps() if self._pipeline is not None else {}
        return {name: self._node(name, tasks.get(name)) for name in self._nodes}

    def get_running_nodes(self) -> list[str]:
        """The steps running now."""
        return [n for n, node in self.get_pipeline_dag().items() if node.status == "running"]

    def get_processed_nodes(self) -> list[str]:
        """The steps that have ended."""
        ended = {s.value for s in FINAL_STATUSES}
        return [n for n, node in self.get_pipeline_dag().items() if node.status in ended]

    def is_successful(self) -> bool:
        """True once every step has completed."""
        return all(node.status == "completed" for node in self.get_pipeline_dag().values())


__all__ = ["DEFAULT_POOL_FREQUENCY_MINUTES", "PipelineController", "PipelineNode"]
