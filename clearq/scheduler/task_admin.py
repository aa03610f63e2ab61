"""Labels and the by-hand run's own lifecycle moves (ClearML's Task surface).

A task's labels (name, tags, comment) describe it and never change what runs, so they
can be changed in any status, unlike a draft's code and parameters (``TaskRepo.edit``).
The other operations here back ``Task.init(reuse_last_task_id=..., continue_last_task=...)``
and ``execute_remotely(queue_name=None)``: a script run again by hand takes over its
earlier task, and a run can hand its task back as a draft.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import Fence, Task, TaskStatus
from clearq.scheduler import takeover
from clearq.scheduler.dependencies import skip_blocked
from clearq.scheduler.engine import Database
from clearq.scheduler.rows import fetch_task, hold, lock_status, transition
from clearq.scheduler.schema import db_now, queue_entries, tasks
from clearq.scheduler.sqla_exec import on
from clearq.scheduler.tasks import RESET_TABLES


class TaskAdmin:
    """Operations on whole tasks beyond the draft's edits: labels, take over, skip.

    Deleting and archiving, one task or many, are ``Cleanup``'s (``cleanup.py``).
    """

    def __init__(self, db: Database, *, lease_seconds: float) -> None:
        self._db = db
        self._lease_seconds = lease_seconds

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
            values["tags"] = list(dict.fromkeys(str(t) for t in tags))
        if comment is not None:
            values["comment"] = comment
        with self._db.write() as conn:
            lock_status(conn, task_id)  # NotFound for an unknown id
            if values:
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id)
                    .values(updated_at=db_now(), **values)
                )
            return fetch_task(conn, task_id)

    def take_over(
        self,
        task_id: uuid.UUID,
        *,
        keep_outputs: bool,
        script: dict[str, Any] | None = None,
        env: dict[str, Any] | None = None,
    ) -> Fence:
        """Start a task again as a run by hand (no worker); the fence its writes carry.

        ``keep_outputs=False`` (``reuse_last_task_id``): the task becomes a fresh run of
        the code captured now; its earlier outputs are deleted and a new attempt starts.
        ``keep_outputs=True`` (``continue_last_task``): the same attempt goes on, so its
        scalars, logs and artifacts stay and new ones add to them. (A run's own path
        does the same through ``RunLink.take_over``: ``takeover.py`` holds both.)
        """
        with self._db.write() as conn:
            taken = takeover.take_over(
                on(conn),
                task_id,
                keep_outputs=keep_outputs,
                name=None,
                script=script,
                env=env,
                add_tags=(),
                lease_seconds=self._lease_seconds,
            )
        return Fence(task_id=task_id, attempt=taken.attempt, worker=None)

    def skip(self, task_id: uuid.UUID, reason: str) -> list[uuid.UUID]:
        """Mark a draft or queued task skipped, and the queued tasks waiting on it after it.

        Returns the ids of the tasks skipped with it.
        """
        with self._db.write() as conn:
            _skip_one(conn, task_id, reason)
            return skip_blocked(conn)

    def release_run(self, fence: Fence) -> Task:
        """A run by hand gives its task back as a draft (``execute_remotely()`` with no queue).

        What the run reported is deleted; its parameters and captured code stay, ready to
        be edited, cloned or enqueued.
        """
        with self._db.write() as conn:
            hold(conn, fence)
            transition(
                conn,
                fence.task_id,
                TaskStatus.CREATED,
                expect=TaskStatus.RUNNING,
                worker=None,
                tries=0,
                started_at=None,
                lease_expires_at=None,
                status_reason="left as a draft by its local run (execute_remotely)",
            )
            for table in RESET_TABLES:
                conn.execute(table.delete().where(table.c.task_id == fence.task_id))
            return fetch_task(conn, fence.task_id)


def _skip_one(conn: Any, task_id: uuid.UUID, reason: str) -> None:
    transition(
        conn,
        task_id,
        TaskStatus.SKIPPED,
        expect=frozenset({TaskStatus.CREATED, TaskStatus.QUEUED}),
        status_reason=f"skipped: {reason}",
        finished_at=db_now(),
    )
    conn.execute(queue_entries.delete().where(queue_entries.c.task_id == task_id))
