"""References between the steps of a pipeline, resolved when a step is about to run.

A step's parameters may name what an earlier step produced: ``${prepare.id}``,
``${prepare.artifacts.data.url}``, ``${prepare.parameters.General/x}``. They cannot be
known when the pipeline is enqueued, and no controller process waits to fill them in:
the agent that claimed the step resolves them (``TaskRepo.resolve_references``) before
the step's code starts, when every parent has completed. Steps find each other through
their pipeline's record (the task that is their ``parent_id``), whose parameters map
``Pipeline/steps/<name>`` to each step's task id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.scheduler.schema import task_artifacts, tasks

STEP_KEY_PREFIX = "Pipeline/steps/"
"""A pipeline record's parameter naming a step's task: ``Pipeline/steps/<name>`` -> id."""

_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\.(id|artifacts|parameters)(?:\.([^}]+))?\}")


def has_references(parameters: Mapping[str, str]) -> bool:
    """True when some value names another step (``${...}``)."""
    return any("${" in value for value in parameters.values())


def resolve(conn: Connection, task_id: uuid.UUID, parameters: Mapping[str, str]) -> dict[str, str]:
    """``parameters`` with every ``${step.…}`` replaced; InvalidInput naming a bad one."""
    steps = _steps_of(conn, task_id)

    def value(match: re.Match[str]) -> str:
        step, kind, rest = match.group(1), match.group(2), match.group(3)
        if step not in steps:
            known = ", ".join(sorted(steps)) or "none"
            raise InvalidInput(f"{match.group(0)} names no step of this pipeline (steps: {known})")
        return _lookup(conn, steps[step], kind, rest, match.group(0))

    return {key: _REFERENCE.sub(value, text) for key, text in parameters.items()}


def _steps_of(conn: Connection, task_id: uuid.UUID) -> dict[str, uuid.UUID]:
    pipeline = conn.execute(sa.select(tasks.c.parent_id).where(tasks.c.id == task_id)).scalar()
    if pipeline is None:
        return {}
    params = conn.execute(sa.select(tasks.c.parameters).where(tasks.c.id == pipeline)).scalar()
    return {
        key.removeprefix(STEP_KEY_PREFIX): uuid.UUID(value)
        for key, value in (params or {}).items()
        if key.startswith(STEP_KEY_PREFIX)
    }


def _lookup(conn: Connection, step: uuid.UUID, kind: str, rest: str | None, text: str) -> str:
    if kind == "id" and rest is None:
        return str(step)
    if kind == "parameters" and rest:
        params = conn.execute(sa.select(tasks.c.parameters).where(tasks.c.id == step)).scalar()
        if params is None or rest not in params:
            raise InvalidInput(f"{text}: that step has no parameter {rest!r}")
        return str(params[rest])
    if kind == "artifacts" and rest and rest.endswith(".url"):
        name = rest.removesuffix(".url")
        uri = conn.execute(
            sa.select(task_artifacts.c.uri).where(
                task_artifacts.c.task_id == step, task_artifacts.c.name == name
            )
        ).scalar()
        if uri is None:
            raise InvalidInput(f"{text}: that step has no artifact {name!r}")
        return str(uri)
    raise InvalidInput(
        f"{text} is not a reference clearq knows: use ${{step.id}}, "
        "${step.parameters.Section/name} or ${step.artifacts.NAME.url}"
    )
