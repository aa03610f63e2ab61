"""Small builders shared by the integration tests."""

from __future__ import annotations

import uuid

from clearq.models import TaskSpec
from clearq.scheduler import Store


def new_task(store: Store, name: str = "t", *, project: str = "p", **spec: object) -> uuid.UUID:
    """Create a draft task and return its id."""
    return store.tasks.create(TaskSpec(project=project, name=name, **spec)).id  # type: ignore[arg-type]


def queued(store: Store, queue: str, name: str = "t", *, priority: int = 0) -> uuid.UUID:
    """Create a task and enqueue it; return its id."""
    task_id = new_task(store, name)
    store.queues.enqueue(task_id, queue, priority=priority)
    return task_id


def bulk_queued(store: Store, queue: str, count: int) -> list[uuid.UUID]:
    """Put ``count`` fresh tasks in ``queue`` in one transaction (fast test setup)."""
    from clearq.scheduler.schema import db_now, queue_entries, queues, tasks

    ids = [uuid.uuid4() for _ in range(count)]
    empty: dict[str, object] = {}
    with store.db.write() as conn:
        queue_id = conn.execute(
            queues.select().with_only_columns(queues.c.id).where(queues.c.name == queue)
        ).scalar_one()
        conn.execute(
            tasks.insert().values(created_at=db_now(), updated_at=db_now(), queued_at=db_now()),
            [
                {
                    "id": task_id,
                    "project": "bulk",
                    "name": f"t{i}",
                    "type": "training",
                    "status": "queued",
                    "status_reason": "",
                    "script": empty,
                    "env": empty,
                    "container": empty,
                    "parameters": empty,
                    "tags": [],
                    "runtime": empty,
                    "comment": "",
                    "queue_id": queue_id,
                    "attempt": 0,
                    "tries": 0,
                    "max_attempts": 3,
                }
                for i, task_id in enumerate(ids)
            ],
        )
        conn.execute(
            queue_entries.insert().values(enqueued_at=db_now()),
            [{"queue_id": queue_id, "task_id": t, "priority": 0} for t in ids],
        )
    return ids
