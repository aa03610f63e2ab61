"""The steps of a :class:`PipelineController` as described, and as its callbacks see them.

ClearML's references are translated here into clearq's: ``${pipeline.X}`` becomes the
pipeline parameter's value (its own type when it is the whole value), and a function
step's keyword argument ``"${step.name}"`` or ``"${step.artifacts.name}"`` receives the
earlier step's return value as an object. Every other ``${step.…}`` reference is left
for the agent to resolve when the step runs. A step a reference names is a parent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clearq.automation.pipeline_steps import artifact_input
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.automation.pipeline import Pipeline
    from clearq.sdk import Task

_PIPELINE_REF = re.compile(r"\$\{pipeline\.([^}]+)\}")
_STEP_REF = re.compile(r"\$\{([A-Za-z0-9_-]+)\.")
_WHOLE_STEP_VALUE = re.compile(r"^\$\{([A-Za-z0-9_-]+)\.(?:artifacts\.)?([^}.]+)\}$")


@dataclass(frozen=True)
class PipelineNode:
    """A step as ClearML's callbacks and ``get_pipeline_dag()`` see it."""

    name: str
    base_task_id: str | None
    queue: str
    parents: list[str]
    parameters: dict[str, Any]
    executed: str | None = None
    """The id of the task that runs (ran) this step, once started."""
    status: str | None = None
    cache_executed_step: bool = False
    task: Task | None = None


@dataclass
class NodeSpec:
    """One step as the pipeline's author described it."""

    name: str
    base_task_id: str | None = None
    function: Callable[..., Any] | None = None
    function_kwargs: dict[str, Any] = field(default_factory=dict)
    function_return: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    parameter_override: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    continue_on_fail: bool = False
    pre_execute: Callable[..., Any] | None = None
    post_execute: Callable[..., Any] | None = None
    cache: bool = False
    retries: int = 0

    @property
    def held(self) -> bool:
        """A step with a pre-execute callback waits, a draft, until the callback has run."""
        return self.pre_execute is not None

    def all_parents(self, known: set[str]) -> list[str]:
        """The parents given and the steps its references name, in order, once each."""
        named: list[str] = list(self.parents)
        for value in [*self.parameter_override.values(), *self.function_kwargs.values()]:
            if isinstance(value, str):
                named += [m for m in _STEP_REF.findall(value) if m in known and m != "pipeline"]
        unknown = [p for p in self.parents if p not in known]
        if unknown:
            raise InvalidInput(f"step {self.name!r} names unknown parents {unknown}")
        return list(dict.fromkeys(named))

    def add_to(
        self,
        pipe: Pipeline,
        *,
        known: set[str],
        parameters: Mapping[str, Any],
        nodes: Mapping[str, NodeSpec],
        hold: bool = False,
    ) -> None:
        """Add this step to ``pipe``, its references translated (held if ``hold``)."""
        parents = self.all_parents(known)
        common: dict[str, Any] = {
            "parents": parents,
            "queue": self.queue,
            "cache_executed_step": self.cache,
            "max_retries": self.retries,
            "continue_on_failure": self.continue_on_fail,
            "hold": self.held or hold,
        }
        if self.function is None:
            assert self.base_task_id is not None
            overrides = {k: substitute(v, parameters) for k, v in self.parameter_override.items()}
            pipe.add_step(self.name, self.base_task_id, parameter_override=overrides, **common)
            return
        kwargs = {
            k: _function_input(substitute(v, parameters), nodes)
            for k, v in self.function_kwargs.items()
        }
        pipe.add_function_step(
            self.name,
            self.function,
            kwargs,
            self.function_return,
            packages=self.packages,
            **common,
        )

    def view(self, task: Task | None, *, queue: str, known: set[str]) -> PipelineNode:
        """The node a callback is handed."""
        status = task.get_status().value if task is not None else None
        return PipelineNode(
            name=self.name,
            base_task_id=self.base_task_id,
            queue=queue,
            parents=self.all_parents(known),
            parameters=task.get_parameters() if task is not None else dict(self.parameter_override),
            executed=task.id if task is not None else None,
            status=status,
            cache_executed_step=self.cache,
            task=task,
        )


def substitute(value: Any, parameters: Mapping[str, Any]) -> Any:
    """``value`` with ``${pipeline.X}`` filled in; InvalidInput for an unknown parameter."""
    if not isinstance(value, str):
        return value

    def lookup(name: str) -> Any:
        if name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            raise InvalidInput(f"${{pipeline.{name}}} names no pipeline parameter (known: {known})")
        return parameters[name]

    whole = _PIPELINE_REF.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _PIPELINE_REF.sub(lambda m: str(lookup(m.group(1))), value)


def _function_input(value: Any, nodes: Mapping[str, NodeSpec]) -> Any:
    if not isinstance(value, str):
        return value
    match = _WHOLE_STEP_VALUE.match(value)
    if match is None:
        return value
    step, name = match.groups()
    producer = nodes.get(step)
    if producer is None or name in ("id",):
        return value
    if producer.function is not None and name not in producer.function_return:
        raise InvalidInput(
            f"{value}: step {step!r} returns {list(producer.function_return)}, not {name!r}"
        )
    return artifact_input(step, name)


__all__ = ["NodeSpec", "PipelineNode", "substitute"]
