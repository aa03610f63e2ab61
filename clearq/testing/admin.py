"""The in-memory store's operations on whole tasks (``ports.TaskAdmin``): labels and skips."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import Task, TaskStatus
from clearq.testing.state import State

_SKIPPABLE = frozenset({TaskStatus.CREATED, TaskStatus.QUEUED})


class MemoryAdmin:
    """Labels of any task, and skipping a draft or queued one with those waiting on it."""

    def __init__(self, state: State) -> None:
        self._s = state

    def annotate(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        comment: str | None = None,
        project: str | None = None,
    ) -> Task:
        """Change a task's name, tags, comment or project, in any status."""
        values: dict[str, Any] = {}
        if project is not None:
            if not project.strip():
                raise InvalidInput("a task's project cannot be empty")
            values["project"] = project
        if name is not None:
            if not name.strip():
                raise InvalidInput("a task's name cannot be empty")
            values["name"] = name
        if tags is not None:
            values["tags"] = tuple(dict.fromkeys(str(t) for t in tags))
        if comment is not None:
            values["comment"] = comment
        with self._s.lock:
            task = self._s.task(task_id)
            return self._s.put(task, **values) if values else task

    def skip(self, task_id: uuid.UUID, reason: str) -> list[uuid.UUID]:
        """Mark a draft or queued task skipped, and the queued tasks waiting on it after it.

        Returns the ids of the tasks skipped with it.
        """
        s = self._s
        with s.lock:
            s.transition(
                task_id,
                TaskStatus.SKIPPED,
                expect=_SKIPPABLE,
                status_reason=f"skipped: {reason}",
                finished_at=s.now(),
            )
            s.entries.pop(task_id, None)
            return s.skip_blocked()


__all__ = ["MemoryAdmin"]
