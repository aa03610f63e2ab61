"""Models a task's run stored: written fenced by that run, read by anyone.

A model row says where its weights are (a file under the task's output location, like
an artifact), what framework made them, and the labels and configuration they were
trained with. ``OutputModel`` writes them through the run's fence, so a superseded
attempt's model changes nothing; ``InputModel`` finds one by id or by name.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from clearq.errors import NotFound
from clearq.models import Fence, ModelRecord
from clearq.scheduler.engine import Database
from clearq.scheduler.rows import hold
from clearq.scheduler.schema import db_now, task_models, tasks

_FIELDS = ("name", "framework", "uri", "size", "sha256", "labels", "config", "tags", "comment")


class ModelRegistry:
    """The models of tasks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, fence: Fence, model: ModelRecord) -> ModelRecord:
        """Create or update ``model`` (by id) as the fenced attempt's; LeaseLost if not."""
        values: dict[str, Any] = {k: getattr(model, k) for k in _FIELDS}
        values["tags"] = list(model.tags)
        values["iteration"] = model.iteration
        m = task_models.c
        with self._db.write() as conn:
            hold(conn, fence)
            updated = conn.execute(
                task_models.update()
                .where(m.id == model.id, m.task_id == fence.task_id)
                .values(attempt=fence.attempt, updated_at=db_now(), **values)
            )
            if updated.rowcount == 0:
                conn.execute(
                    task_models.insert().values(
                        id=model.id,
                        task_id=fence.task_id,
                        attempt=fence.attempt,
                        created_at=db_now(),
                        updated_at=db_now(),
                        **values,
                    )
                )
            row = conn.execute(sa.select(task_models).where(m.id == model.id)).one()
        return _record(row)

    def get(self, model_id: uuid.UUID) -> ModelRecord:
        """A model by id; NotFound when there is none."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(task_models).where(task_models.c.id == model_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no model with id {model_id}")
        return _record(row)

    def find(self, name: str, *, project: str | None = None) -> ModelRecord:
        """The newest model named ``name`` (of a task in ``project``, when given)."""
        m = task_models.c
        query = sa.select(task_models).where(m.name == name)
        if project is not None:
            query = query.join(tasks, tasks.c.id == m.task_id).where(tasks.c.project == project)
        with self._db.read() as conn:
            row = conn.execute(query.order_by(m.updated_at.desc()).limit(1)).one_or_none()
        if row is None:
            where = f" in project {project!r}" if project is not None else ""
            raise NotFound(f"no model named {name!r}{where}")
        return _record(row)

    def of_task(self, task_id: uuid.UUID) -> list[ModelRecord]:
        """A task's models, oldest first."""
        m = task_models.c
        query = sa.select(task_models).where(m.task_id == task_id).order_by(m.created_at, m.name)
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute(query)]


def _record(r: Any) -> ModelRecord:
    return ModelRecord(
        id=r.id,
        task_id=r.task_id,
        name=r.name,
        framework=r.framework,
        uri=r.uri,
        size=r.size,
        sha256=r.sha256,
        labels=dict(r.labels),
        config=dict(r.config),
        tags=tuple(r.tags),
        comment=r.comment,
        iteration=r.iteration,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
