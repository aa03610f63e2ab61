"""The steps of a pipeline: what each one runs, and the task spec it becomes.

A task step is a clone of an existing task with some parameters overridden; a function
step is a plain Python function, shipped as a small script whose keyword arguments
travel as parameters (``kwargs/<name>``, JSON text) and whose return value becomes an
artifact. Either may name what an earlier step produced (``${prepare.id}``,
``${prepare.artifacts.data.url}``, ``${prepare.parameters.General/x}``): the agent
resolves those when the step is about to run. A function step's keyword argument given
as :func:`artifact_input` receives the object an earlier step stored, loaded back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import Container, EnvSpec, Script, Task, TaskSpec
from clearq.sdk import function_script
from clearq.sdk import parameters as params

KWARGS_SECTION = "kwargs"
STEP_TAG = "pipeline-step"
CACHE_TAG_PREFIX = "cache:"


@dataclass(frozen=True)
class Step:
    """One step as the pipeline's author described it."""

    name: str
    parents: tuple[str, ...] = ()
    queue: str | None = None
    base_task: Task | None = None
    parameter_override: Mapping[str, Any] = field(default_factory=dict)
    function: Callable[..., Any] | None = None
    function_kwargs: Mapping[str, Any] = field(default_factory=dict)
    function_return: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    cache: bool = False
    max_retries: int = 0
    retry_delay_seconds: float | None = None
    continue_on_failure: bool = False
    time_limit: float | None = None
    hold: bool = False
    """Created by ``start`` but enqueued only by ``Pipeline.release`` (a controller's callback)."""

    def spec(self, *, project: str, pipeline_id: Any, cache_key: str | None) -> TaskSpec:
        """The task this step becomes, a child of the pipeline's record."""
        code, env, parameters = self._code()
        tags = (STEP_TAG,) + ((f"{CACHE_TAG_PREFIX}{cache_key}",) if cache_key else ())
        return TaskSpec(
            project=project,
            name=self.name,
            type="pipeline-step",
            script=code,
            env=env,
            container=self.base_task.container if self.base_task else Container(),
            parameters=parameters,
            tags=tags,
            parent_id=pipeline_id,
            max_retries=self.max_retries,
            retry_delay_seconds=self.retry_delay_seconds,
            max_run_seconds=self.time_limit,
        )

    def fingerprint(self, inputs: Sequence[str]) -> str:
        """A key for step caching: the code, the parameters and the parents' keys."""
        code, env, parameters = self._code()
        blob = json.dumps(
            {
                "script": code.model_dump(mode="json", exclude={"arguments"}),
                "arguments": list(code.arguments),
                "env": env.model_dump(mode="json"),
                "parameters": parameters,
                "inputs": list(inputs),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _code(self) -> tuple[Script, EnvSpec, dict[str, str]]:
        if self.function is not None:
            return self._function_code()
        assert self.base_task is not None
        base = self.base_task
        overrides = {k: params.to_text(v) for k, v in self.parameter_override.items()}
        return base.script, base.env, {**base.parameters, **overrides}

    def _function_code(self) -> tuple[Script, EnvSpec, dict[str, str]]:
        function = self.function
        assert function is not None
        what = f"step {self.name!r}: a function step"
        source = function_script(function, what, self.function_return, keep_none=True)
        script = Script(source=source, entry_point=f"step_{function.__name__}.py")
        kwargs = {
            f"{KWARGS_SECTION}{params.SEPARATOR}{k}": json.dumps(v)
            for k, v in self.function_kwargs.items()
        }
        return script, EnvSpec(requirements=self.packages), kwargs


ARTIFACT_INPUT_KEY = "$clearq_artifact"


def artifact_input(step: str, artifact: str) -> dict[str, list[str]]:
    """A function step's keyword argument that receives ``step``'s artifact, as an object."""
    return {ARTIFACT_INPUT_KEY: ["${" + step + ".id}", artifact]}


def topological(steps: Mapping[str, Step]) -> list[str]:
    """Step names with every parent before its children; InvalidInput on a bad graph."""
    for step in steps.values():
        unknown = [p for p in step.parents if p not in steps]
        if unknown:
            raise InvalidInput(f"step {step.name!r} names unknown parents {unknown}")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise InvalidInput(f"the pipeline's steps form a cycle through {name!r}")
        state[name] = "visiting"
        for parent in steps[name].parents:
            visit(parent)
        state[name] = "done"
        order.append(name)

    for name in steps:
        visit(name)
    return order


def descendants(steps: Mapping[str, Step], start: str) -> set[str]:
    """``start`` and every step that depends on it, directly or not."""
    found = {start}
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step.name not in found and found & set(step.parents):
                found.add(step.name)
                changed = True
    return found
