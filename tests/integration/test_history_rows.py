"""The status history on both SQL stores after migration 0023 (no foreign key on
``task_events``): written on every path that changes a task, and gone with its task on
every path that deletes one, so that no event names a task that does not exist."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from clearq.models import RunResult, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import task_events, tasks

ORPHANS = sa.select(sa.func.count()).where(task_events.c.task_id.not_in(sa.select(tasks.c.id)))


def _queued(store: Store, n: int, queue: str = "q") -> list[uuid.UUID]:
    if queue not in {q.name for q in store.queues.list()}:
        store.queues.create(queue)
    ids = []
    for i in range(n):
        task_id = store.tasks.create(TaskSpec(project="h", name=f"t{i}")).id
        store.queues.enqueue(task_id, queue)
        ids.append(task_id)
    return ids


def _statuses(store: Store, task_id: uuid.UUID) -> list[str]:
    return [str(e.status) for e in store.tasks.history(task_id)]


def _events_of(store: Store, ids: list[uuid.UUID]) -> int:
    with store.db.read() as conn:
        count = sa.select(sa.func.count()).where(task_events.c.task_id.in_(ids))
        return int(conn.execute(count).scalar_one())


def _orphans(store: Store) -> int:
    with store.db.read() as conn:
        return int(conn.execute(ORPHANS).scalar_one())


def test_history_is_written_on_every_path(store: Store) -> None:
    one, two, three, preempted, stopped = _queued(store, 5)
    claimer = store.claimer("w", ["q"])
    [first] = claimer.claim(1)
    store.leases.finish(first.fence, TaskStatus.COMPLETED, exit_code=0)
    batch = claimer.claim(2)
    lost = store.leases.finish_many(
        [RunResult(fence=c.fence, status=TaskStatus.COMPLETED, exit_code=0) for c in batch]
    )
    assert lost == frozenset()
    [claim] = claimer.claim(1)
    store.leases.requeue(claim.fence, reason="spot reclaimed", preempted=True)
    [again] = claimer.claim(1)
    assert again.task_id == preempted
    [last] = claimer.claim(1)
    store.leases.request_stop(last.task_id, force=True)

    done = ["created", "queued", "running", "completed"]
    assert _statuses(store, one) == done
    assert _statuses(store, two) == done
    assert _statuses(store, three) == done
    assert _statuses(store, preempted) == [
        "created", "queued", "running", "preempted", "queued", "running",
    ]  # fmt: skip
    assert _statuses(store, stopped) == ["created", "queued", "running", "stopped"]
    assert _orphans(store) == 0


def test_deleting_tasks_removes_their_history_on_every_path(store: Store) -> None:
    by_cleanup = _queued(store, 3)
    by_sql = _queued(store, 2)
    kept = _queued(store, 1)
    assert _events_of(store, by_cleanup + by_sql) == 10  # draft and queued each

    store.cleanup.delete(by_cleanup)
    assert _events_of(store, by_cleanup) == 0
    with store.db.write() as conn:  # any other delete: a script's SQL, a schedule's clone
        conn.execute(tasks.delete().where(tasks.c.id == by_sql[0]))
        conn.execute(tasks.delete().where(tasks.c.id == by_sql[1]))
    assert _events_of(store, by_sql) == 0
    assert _statuses(store, kept[0]) == ["created", "queued"]
    assert _orphans(store) == 0


def test_a_multi_row_delete_removes_every_task_history(store: Store) -> None:
    ids = _queued(store, 30)
    with store.db.write() as conn:
        conn.execute(tasks.delete().where(tasks.c.id.in_(ids[:20])))
    assert _events_of(store, ids[:20]) == 0
    assert _events_of(store, ids[20:]) == 20
    assert _orphans(store) == 0
