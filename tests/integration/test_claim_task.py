"""Claiming one named task out of its queue (``clearq task run``), and preemption's mark."""

from __future__ import annotations

import uuid

import pytest

from clearq.errors import InvalidInput, NotFound
from clearq.models import HistoryMark, TaskStatus
from clearq.scheduler import Store
from tests.integration.helpers import new_task, queued


def test_a_named_task_is_claimed_out_of_its_queue(store: Store) -> None:
    store.queues.create("q")
    first, second = queued(store, "q", "first"), queued(store, "q", "second")
    claim = store.claim_task("host:run", second)
    assert (claim.task_id, claim.attempt, claim.queue) == (second, 1, "q")
    task = store.tasks.get(second)
    assert (task.status, task.worker, task.tries) == (TaskStatus.RUNNING, "host:run", 1)
    assert task.lease_expires_at is not None
    # The agents' claim sees only what is left, and cannot take the named task again.
    assert [c.task_id for c in store.claimer("host:agent", ["q"]).claim(5)] == [first]
    with pytest.raises(InvalidInput, match="already running on host:run"):
        store.claim_task("host:other", second)


def test_what_cannot_be_claimed_says_why(store: Store) -> None:
    store.queues.create("q")
    with pytest.raises(NotFound, match="no task with id"):
        store.claim_task("w", uuid.uuid4())
    draft = new_task(store, "draft")
    with pytest.raises(InvalidInput, match="is created, not queued: enqueue it first"):
        store.claim_task("w", draft)
    parent = queued(store, "q", "parent")
    child = new_task(store, "child")
    store.queues.enqueue(child, "q", depends_on=[parent])
    with pytest.raises(InvalidInput, match=f"waits for task {parent} \\(queued\\) to complete"):
        store.claim_task("w", child)
    assert store.tasks.get(child).status is TaskStatus.QUEUED


def test_a_preempted_attempt_is_marked_and_spends_no_attempt(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    claim = store.claim_task("host:run", task_id)
    task = store.leases.requeue(claim.fence, reason="SIGTERM", preempted=True)
    assert (task.status, task.tries) == (TaskStatus.QUEUED, 0)
    assert task.status_reason == "requeued after attempt 1: preempted: SIGTERM"
    history = store.tasks.history(task_id)
    assert [(e.status, e.attempt) for e in history[-3:]] == [
        (TaskStatus.RUNNING, 1),
        (HistoryMark.PREEMPTED, 1),
        (TaskStatus.QUEUED, 1),
    ]
    assert history[-2].reason == "preempted: SIGTERM"
    assert history[-2].worker == "host:run"
