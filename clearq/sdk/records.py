"""The store-backed half of ``Task``: reading and changing tasks by id.

:class:`StoreRecords` is everything a :class:`~clearq.sdk.task.Task` asks of the store
(get, list, create, clone, enqueue, parameters, results, artifacts, models), over one Store: the
one it was given, else the session's default (``clearq.sdk.session``), opened on first
use.

The store (SQLAlchemy) and the models (pydantic) are imported only when a method runs:
a training script reaches ``Task.init`` without them.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clearq.enums import TaskStatus
from clearq.sdk.session import default_store

if TYPE_CHECKING:
    from clearq.models import (
        Artifact,
        DebugSample,
        Fence,
        LogLine,
        ModelRecord,
        ReportedPlot,
        ScalarPoint,
        ScalarSummary,
        TaskSpec,
    )
    from clearq.models import Task as TaskRecord
    from clearq.scheduler import Store

log = logging.getLogger(__name__)


class StoreRecords:
    """Tasks in one store, by id (the store given, else the session's default)."""

    def __init__(self, store: Store | None = None) -> None:
        self._given = store

    @property
    def store(self) -> Store:
        """The store these records are in (the session's default, opened now if need be)."""
        if self._given is None:
            self._given = default_store()
        return self._given

    # ---- finding and making tasks -------------------------------------------------------

    def get(self, task_id: uuid.UUID) -> TaskRecord:
        """The stored record of a task; NotFound when there is none."""
        return self.store.tasks.get(task_id)

    def list(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        status: TaskStatus | Sequence[TaskStatus] | None = None,
        tags: Sequence[str] = (),
        limit: int = 500,
    ) -> list[TaskRecord]:
        """Tasks matching every filter given, newest first."""
        return self.store.tasks.list(
            project=project, name=name, status=status, tags=tags, limit=limit
        )

    def create(self, spec: TaskSpec) -> TaskRecord:
        """A new draft."""
        return self.store.tasks.create(spec)

    def clone(
        self, task_id: uuid.UUID, *, name: str | None, parent: uuid.UUID | None
    ) -> TaskRecord:
        """A new draft with the same code, environment and parameters."""
        return self.store.tasks.clone(task_id, name=name, parent=parent)

    # ---- changing a task ----------------------------------------------------------------

    def enqueue(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        priority: int,
        depends_on: Sequence[uuid.UUID],
        continue_on_failure: bool,
        nodes: int | None = None,
    ) -> TaskRecord:
        """Put a draft in a queue (``nodes``: on that many agents at once); a ``logging``
        warning when no worker claims from that queue now (``clearq.scheduler.serving``)."""
        queued = self.store.queues.enqueue(
            task_id,
            queue,
            priority=priority,
            depends_on=depends_on,
            continue_on_failure=continue_on_failure,
            nodes=nodes,
        )
        self._warn_if_unserved(queue)
        return queued

    def _warn_if_unserved(self, queue: str) -> None:
        from clearq.errors import StoreError
        from clearq.scheduler.serving import unserved_warning

        try:
            unserved = unserved_warning(self.store.workers, queue)
        except StoreError as e:  # the task is queued; the warning is only a courtesy
            log.debug("could not tell whether a worker serves %s: %s", queue, e)
            return
        if unserved:
            log.warning("%s", unserved)

    def enqueue_run(self, fence: Fence, queue: str, nodes: int | None = None) -> TaskRecord:
        """Send the task this process runs by hand to a queue (``execute_remotely``)."""
        queued = self.store.queues.enqueue_run(fence, queue, nodes=nodes)
        self._warn_if_unserved(queue)
        return queued

    def release_run(self, fence: Fence) -> TaskRecord:
        """Leave the task this process runs by hand a draft (``execute_remotely()``)."""
        return self.store.admin.release_run(fence)

    def dequeue(self, task_id: uuid.UUID) -> TaskRecord:
        """Take a queued task out of its queue."""
        return self.store.queues.dequeue(task_id)

    def update_parameters(self, task_id: uuid.UUID, values: dict[str, str]) -> TaskRecord:
        """Merge parameters into a draft."""
        return self.store.tasks.update_parameters(task_id, values)

    def annotate(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> TaskRecord:
        """Change a task's name, tags or comment, in any status."""
        return self.store.admin.annotate(task_id, name=name, tags=tags, comment=comment)

    def request_stop(
        self, task_id: uuid.UUID, *, reason: str = "", force: bool = False
    ) -> TaskRecord:
        """Ask the run of a task to stop (``force``: end its attempt now)."""
        return self.store.leases.request_stop(task_id, reason=reason, force=force)

    def reset(self, task_id: uuid.UUID) -> TaskRecord:
        """Turn an ended task back into a draft."""
        return self.store.tasks.reset(task_id)

    # ---- results ------------------------------------------------------------------------

    def summary(self, task_id: uuid.UUID) -> builtins.list[ScalarSummary]:
        """Last/min/max of each (title, series) of the latest attempt."""
        return self.store.outputs.summary(task_id)

    def scalars(self, task_id: uuid.UUID) -> builtins.list[ScalarPoint]:
        """Every scalar point of the latest attempt."""
        return self.store.outputs.scalars(task_id)

    def logs(self, task_id: uuid.UUID, *, limit: int) -> builtins.list[LogLine]:
        """Console output, oldest first."""
        return self.store.outputs.logs(task_id, limit=limit)

    def artifacts(self, task_id: uuid.UUID) -> builtins.list[Artifact]:
        """A task's artifacts."""
        return self.store.outputs.artifacts(task_id)

    def plots(
        self, task_id: uuid.UUID, *, max_iterations: int | None
    ) -> builtins.list[ReportedPlot]:
        """The plots of the latest attempt, oldest first."""
        return self.store.reported.plots(task_id, max_iterations=max_iterations)

    def samples(self, task_id: uuid.UUID, *, title: str, series: str) -> builtins.list[DebugSample]:
        """A (title, series)'s debug samples of the latest attempt."""
        return self.store.reported.samples(task_id, title=title, series=series)

    def add_artifact(self, fence: Fence, artifact: Artifact) -> None:
        """Record an artifact the run ``fence`` stored."""
        self.store.outputs.add_artifact(fence, artifact)

    # ---- models -------------------------------------------------------------------------

    def save_model(self, fence: Fence, model: ModelRecord) -> ModelRecord:
        """Create or update a model of the run ``fence`` (OutputModel)."""
        return self.store.registry.save(fence, model)

    def model(self, model_id: uuid.UUID) -> ModelRecord:
        """A model by id."""
        return self.store.registry.get(model_id)

    def find_model(self, name: str, *, project: str | None) -> ModelRecord:
        """The newest model named ``name`` (in ``project``, when given)."""
        return self.store.registry.find(name, project=project)

    def models(self, task_id: uuid.UUID) -> builtins.list[ModelRecord]:
        """A task's models, oldest first."""
        return self.store.registry.of_task(task_id)

    # ---- where files go -----------------------------------------------------------------

    def artifacts_root(self) -> str:
        """Where artifacts go when a task names no output URI."""
        return str(self.store.settings.artifacts_dir)

    def local_folder(self, name: str) -> Path:
        """A folder of this machine's clearq home (``staging``, ``cache/artifacts``)."""
        return self.store.settings.home_dir / name


__all__ = ["StoreRecords"]
