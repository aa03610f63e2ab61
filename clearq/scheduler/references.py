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
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.models import STEP_KEY_PREFIX
from clearq.scheduler.schema import task_artifacts, tasks

_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\.(id|artifacts|parameters)(?:\.([^}]+))?\}")


def has_references(parameters: Mapping[str, str]) -> bool:
    """True when some value names another step (``${...}``)."""
    return any("${" in value for value in parameters.values())


class Lookup(Protocol):
    """What resolving needs to read: a task's parent, parameters and artifacts."""

    def parent_of(self, task_id: uuid.UUID) -> uuid.UUID | None: ...
    def parameters_of(self, task_id: uuid.UUID) -> Mapping[str, str] | None: ...
    def artifact_uri(self, task_id: uuid.UUID, name: str) -> str | None: ...


def resolve(conn: Connection, task_id: uuid.UUID, parameters: Mapping[str, str]) -> dict[str, str]:
    """``parameters`` with every ``${step.…}`` replaced; InvalidInput naming a bad one."""
    return resolve_with(_SqlLookup(conn), task_id, parameters)


def resolve_with(
    lookup: Lookup, task_id: uuid.UUID, parameters: Mapping[str, str]
) -> dict[str, str]:
    """:func:`resolve` over any store's :class:`Lookup` (the in-memory one too)."""
    steps = _steps_of(lookup, task_id)

    def value(match: re.Match[str]) -> str:
        step, kind, rest = match.group(1), match.group(2), match.group(3)
        if step not in steps:
            known = ", ".join(sorted(steps)) or "none"
            raise InvalidInput(f"{match.group(0)} names no step of this pipeline (steps: {known})")
        return _lookup(lookup, steps[step], kind, rest, match.group(0))

    return {key: _REFERENCE.sub(value, text) for key, text in parameters.items()}


class _SqlLookup:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def parent_of(self, task_id: uuid.UUID) -> uuid.UUID | None:
        found: uuid.UUID | None = self._conn.execute(
            sa.select(tasks.c.parent_id).where(tasks.c.id == task_id)
        ).scalar()
        return found

    def parameters_of(self, task_id: uuid.UUID) -> Mapping[str, str] | None:
        found: Mapping[str, str] | None = self._conn.execute(
            sa.select(tasks.c.parameters).where(tasks.c.id == task_id)
        ).scalar()
        return found

    def artifact_uri(self, task_id: uuid.UUID, name: str) -> str | None:
        found: str | None = self._conn.execute(
            sa.select(task_artifacts.c.uri).where(
                task_artifacts.c.task_id == task_id, task_artifacts.c.name == name
            )
        ).scalar()
        return found


def _steps_of(lookup: Lookup, task_id: uuid.UUID) -> dict[str, uuid.UUID]:
    pipeline = lookup.parent_of(task_id)
    if pipeline is None:
        return {}
    params = lookup.parameters_of(pipeline)
    return {
        key.removeprefix(STEP_KEY_PREFIX): uuid.UUID(value)
        for key, value in (params or {}).items()
        if key.startswith(STEP_KEY_PREFIX)
    }


def _lookup(lookup: Lookup, step: uuid.UUID, kind: str, rest: str | None, text: str) -> str:
    if kind == "id" and rest is None:
        return str(step)
    if kind == "parameters" and rest:
        params = lookup.parameters_of(step)
        if params is None or rest not in params:
            raise InvalidInput(f"{text}: that step has no parameter {rest!r}")
        return str(params[rest])
    if kind == "artifacts" and rest and rest.endswith(".url"):
        name = rest.removesuffix(".url")
        uri = lookup.artifact_uri(step, name)
        if uri is None:
            raise InvalidInput(f"{text}: that step has no artifact {name!r}")
        return str(uri)
    raise InvalidInput(
        f"{text} is not a reference clearq knows: use ${{step.id}}, "
        "${step.parameters.Section/name} or ${step.artifacts.NAME.url}"
    )
