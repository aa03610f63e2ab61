"""A task's records when it runs under an agent that gives it no database.

:class:`ChannelRecords` is what ``Task`` uses in such a process: its own task's record,
parameters, results and artifacts come through the attempt's channel
(:class:`~clearq.sdk.channel.ChannelLink`); everything else the store would do (another
task, a new task, a queue) raises ChannelRefused, which says which agents give a task
more. It is a :class:`~clearq.sdk.records.StoreRecords` whose store is refused, so an
operation added to the store-backed records is refused here until the channel serves it.
"""

from __future__ import annotations

import builtins
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clearq.errors import ChannelRefused
from clearq.scheduler.runlink import RunFence
from clearq.sdk.channel import ChannelLink
from clearq.sdk.records import StoreRecords

if TYPE_CHECKING:
    from clearq.models import (
        Artifact,
        Fence,
        LogLine,
        ModelRecord,
        ScalarPoint,
        ScalarSummary,
    )
    from clearq.models import Task as TaskRecord
    from clearq.scheduler import Store

NO_DATABASE = (
    "this task runs under an agent that gives its tasks no database: through its agent it "
    "reads and writes only its own attempt. Finding, creating, cloning or enqueuing other "
    "tasks is for controller tasks, on an agent started with --allow-controllers"
)


class ChannelRecords(StoreRecords):
    """Own-task records through the agent's channel; no store."""

    def __init__(self, link: ChannelLink, fence: RunFence) -> None:
        super().__init__()
        self._link = link
        self._fence = fence

    @property
    def store(self) -> Store:
        """Refused: a task under such an agent has no store."""
        raise ChannelRefused(NO_DATABASE)

    def _own(self, task_id: uuid.UUID) -> None:
        if task_id != self._fence.task_id:
            raise ChannelRefused(f"task {task_id} is not this run's task: {NO_DATABASE}")

    def get(self, task_id: uuid.UUID) -> TaskRecord:
        """This run's own task, or another step of its pipeline (its inputs), as its agent
        reads them."""
        from clearq.models import Task as TaskRecord

        return TaskRecord.model_validate(self._link.call("record", self._fence, of=str(task_id)))

    def annotate(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> TaskRecord:
        """Change this run's own task's name, tags or comment, through its agent."""
        from clearq.models import Task as TaskRecord

        self._own(task_id)
        labels = {"name": name, "tags": None if tags is None else list(tags), "comment": comment}
        return TaskRecord.model_validate(self._link.call("annotate", self._fence, **labels))

    def summary(self, task_id: uuid.UUID) -> builtins.list[ScalarSummary]:
        """This run's scalar summary."""
        from clearq.models import ScalarSummary

        self._own(task_id)
        return [ScalarSummary.model_validate(s) for s in self._link.call("summary", self._fence)]

    def scalars(self, task_id: uuid.UUID) -> builtins.list[ScalarPoint]:
        """This run's scalar points."""
        from clearq.models import ScalarPoint

        self._own(task_id)
        return [ScalarPoint.model_validate(p) for p in self._link.call("scalars", self._fence)]

    def logs(self, task_id: uuid.UUID, *, limit: int) -> builtins.list[LogLine]:
        """This run's console output."""
        from clearq.models import LogLine

        self._own(task_id)
        found = self._link.call("logs", self._fence, limit=limit)
        return [LogLine.model_validate(line) for line in found]

    def artifacts(self, task_id: uuid.UUID) -> builtins.list[Artifact]:
        """This run's artifacts, or those of another step of its pipeline (its inputs)."""
        from clearq.models import Artifact

        found = self._link.call("artifacts", self._fence, of=str(task_id))
        return [Artifact.model_validate(a) for a in found]

    def add_artifact(self, fence: Fence, artifact: Artifact) -> None:
        """Record an artifact this run stored (the agent checks it lies in its folder)."""
        self._own(fence.task_id)
        self._link.call("add_artifact", self._fence, artifact=artifact.model_dump(mode="json"))

    def save_model(self, fence: Fence, model: ModelRecord) -> ModelRecord:
        """Create or update a model of this run (OutputModel), through its agent."""
        from clearq.models import ModelRecord

        self._own(fence.task_id)
        saved = self._link.call("save_model", self._fence, model=model.model_dump(mode="json"))
        return ModelRecord.model_validate(saved)

    def model(self, model_id: uuid.UUID) -> ModelRecord:
        """A model by id (an input model)."""
        from clearq.models import ModelRecord

        return ModelRecord.model_validate(self._link.call("model", self._fence, id=str(model_id)))

    def find_model(self, name: str, *, project: str | None) -> ModelRecord:
        """The newest model named ``name`` (in ``project``, when given)."""
        from clearq.models import ModelRecord

        found = self._link.call("find_model", self._fence, name=name, project=project)
        return ModelRecord.model_validate(found)

    def models(self, task_id: uuid.UUID) -> builtins.list[ModelRecord]:
        """This run's own task's models."""
        from clearq.models import ModelRecord

        self._own(task_id)
        return [ModelRecord.model_validate(m) for m in self._link.call("models", self._fence)]

    def artifacts_root(self) -> str:
        """Where this run's artifacts go, as its agent says."""
        return str(self._link.call("artifacts_root", self._fence))

    def local_folder(self, name: str) -> Path:
        """A scratch folder of this run (no clearq home here)."""
        return Path(tempfile.gettempdir()) / f"clearq-{self._fence.task_id}" / name


__all__ = ["NO_DATABASE", "ChannelRecords"]
