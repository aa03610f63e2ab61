"""The in-memory store's tasks (``ports.TaskRecords``)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import (
    FINAL_STATUSES,
    Fence,
    Task,
    TaskSpec,
    TaskStatus,
    check_environment,
    clone_spec,
)
from clearq.scheduler.references import has_references, resolve_with
from clearq.testing.reported import forget_results
from clearq.testing.state import State

DEFAULT_LIST_LIMIT = 100


class MemoryTasks:
    """Tasks as records, in memory."""

    def __init__(self, state: State, *, max_attempts: int, lease_seconds: float = 60.0) -> None:
        self._s = state
        self._max_attempts = max_attempts
        self._lease_seconds = lease_seconds

    def create(self, spec: TaskSpec) -> Task:
        """Store a new task in status created."""
        s = self._s
        with s.lock:
            now = s.now()
            task = Task(
                id=uuid.uuid4(),
                project=spec.project,
                name=spec.name,
                type=spec.type,
                status=TaskStatus.CREATED,
                script=spec.script,
                env=spec.env,
                container=spec.container,
                parameters=dict(spec.parameters),
                tags=tuple(spec.tags),
                comment=spec.comment,
                parent_id=spec.parent_id,
                output_uri=spec.output_uri,
                runtime={},
                created_at=now,
                updated_at=now,
                queued_at=None,
                started_at=None,
                finished_at=None,
                queue=None,
                worker=None,
                attempt=0,
                tries=0,
                max_attempts=spec.max_attempts or self._max_attempts,
                max_run_seconds=spec.max_run_seconds,
                lease_expires_at=None,
                stop_requested_at=None,
                exit_code=None,
                max_retries=spec.max_retries,
                retries=0,
                retry_delay_seconds=spec.retry_delay_seconds,
                environment=dict(spec.environment),
                user=spec.user,
                nodes=spec.nodes,
            )
            s.tasks[task.id] = task
            s.created_order[task.id] = len(s.created_order)
            return task

    def clone(
        self, task_id: uuid.UUID, *, name: str | None = None, parent: uuid.UUID | None = None
    ) -> Task:
        """A new draft with the task's code, environment, parameters and limits.

        Its ``parent_id`` is ``parent``, by default the task cloned.
        """
        return self.create(clone_spec(self.get(task_id), name=name, parent=parent))

    def get(self, task_id: uuid.UUID) -> Task:
        """The task by id; NotFound when there is none."""
        with self._s.lock:
            return self._s.task(task_id)

    def list(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        status: TaskStatus | Sequence[TaskStatus] | None = None,
        queue: str | None = None,
        tags: Sequence[str] = (),
        limit: int = DEFAULT_LIST_LIMIT,
        user: str | None = None,
        archived: bool | None = False,
    ) -> builtins.list[Task]:
        """Tasks matching every filter given, newest first (archived: see the port)."""
        wanted = {status} if isinstance(status, TaskStatus) else status
        with self._s.lock:
            found = [
                t
                for t in self._s.tasks.values()
                if (project is None or t.project == project)
                and (name is None or t.name == name)
                and (user is None or t.user == user)
                and (archived is None or t.archived is archived)
                and (wanted is None or t.status in wanted)
                and (queue is None or t.queue == queue)
                and set(tags) <= set(t.tags)
            ]
            found.sort(key=lambda t: (t.created_at, self._s.created_order[t.id]), reverse=True)
        return found[:limit]

    def edit(self, task_id: uuid.UUID, **changes: Any) -> Task:
        """Change a draft. Only a task in status created can be edited."""
        values = {k: v for k, v in changes.items() if v is not None}
        if values.get("max_retries", 0) < 0:
            raise InvalidInput(f"max_retries cannot be negative ({values['max_retries']})")
        if values.get("max_attempts", 1) < 1:
            raise InvalidInput(f"max_attempts must be at least 1, not {values['max_attempts']}")
        for key in ("tags",):
            if key in values:
                values[key] = tuple(values[key])
        if "environment" in values:
            try:
                values["environment"] = check_environment(values["environment"])
            except ValueError as e:
                raise InvalidInput(f"the task's environment: {e}") from e
        with self._s.lock:
            current = self._s.task(task_id)
            if current.status is not TaskStatus.CREATED:
                raise InvalidInput(
                    f"task {task_id} is {current.status}: only a draft (created) task can be "
                    "edited; clone it, or reset it first"
                )
            return self._s.put(current, **values)

    def update_parameters(
        self,
        task_id: uuid.UUID,
        parameters: dict[str, str],
        *,
        fence: Fence | None = None,
        replace: bool = False,
    ) -> Task:
        """Merge (or with ``replace``, set) a draft's or, with its fence, a run's parameters."""
        with self._s.lock:
            if fence is None:
                current = self._s.task(task_id)
                if current.status is not TaskStatus.CREATED:
                    raise InvalidInput(
                        f"task {task_id} is {current.status}: only a draft (created) task's "
                        "parameters can be changed; clone it, or reset it first"
                    )
            else:
                current = self._s.hold(fence)
            merged = dict(parameters) if replace else {**current.parameters, **parameters}
            return self._s.put(current, parameters=merged)

    def update_runtime(self, fence: Fence, info: dict[str, Any]) -> None:
        """Merge facts about the current run into ``runtime``."""
        with self._s.lock:
            current = self._s.hold(fence)
            self._s.put(current, runtime={**current.runtime, **info})

    def resolve_references(self, fence: Fence) -> dict[str, str]:
        """Fill in a running step's ``${step.…}`` parameters (``references.resolve_with``)."""
        with self._s.lock:
            current = self._s.hold(fence)
            if not has_references(current.parameters):
                return dict(current.parameters)
            resolved = resolve_with(_Lookup(self._s), fence.task_id, current.parameters)
            self._s.put(current, parameters=resolved)
            return resolved

    def reset(self, task_id: uuid.UUID) -> Task:
        """Turn an ended task back into a draft, clearing the outputs of its runs."""
        s = self._s
        with s.lock:
            task = s.transition(
                task_id,
                TaskStatus.CREATED,
                expect=FINAL_STATUSES,
                status_reason="",
                worker=None,
                tries=0,
                queued_at=None,
                started_at=None,
                finished_at=None,
                lease_expires_at=None,
                stop_requested_at=None,
                exit_code=None,
                runtime={},
            )
            s.logs = [(t, line) for t, line in s.logs if t != task_id]
            s.scalars = [row for row in s.scalars if row[0] != task_id]
            s.summary = {k: v for k, v in s.summary.items() if k[0] != task_id}
            s.artifacts = {k: v for k, v in s.artifacts.items() if k[0] != task_id}
            forget_results(s, {task_id})
            return task

    def start(self, task_id: uuid.UUID, *, worker: str | None = None) -> Fence:
        """Mark a draft running without a queue (a script started by hand); its fence."""
        s = self._s
        with s.lock:
            task = s.task(task_id)
            now = s.now()
            started = s.transition(
                task_id,
                TaskStatus.RUNNING,
                expect=frozenset({TaskStatus.CREATED}),
                worker=worker,
                attempt=task.attempt + 1,
                tries=task.tries + 1,
                started_at=now,
                lease_expires_at=now + timedelta(seconds=self._lease_seconds),
                status_reason="",
            )
        return Fence(task_id=task_id, attempt=started.attempt, worker=worker)

    def parents(self, task_id: uuid.UUID) -> builtins.list[uuid.UUID]:
        """The tasks ``task_id`` waits for (its ``depends_on``), in id order."""
        with self._s.lock:
            return sorted(self._s.parents.get(task_id, {}))


class _Lookup:
    def __init__(self, state: State) -> None:
        self._s = state

    def parent_of(self, task_id: uuid.UUID) -> uuid.UUID | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else task.parent_id

    def parameters_of(self, task_id: uuid.UUID) -> Mapping[str, str] | None:
        task = self._s.tasks.get(task_id)
        return None if task is None else task.parameters

    def artifact_uri(self, task_id: uuid.UUID, name: str) -> str | None:
        found = self._s.artifacts.get((task_id, name))
        return None if found is None else found.uri
