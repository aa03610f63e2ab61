"""The store's contract for quotas: per-user and per-project limits the claim keeps.

The same tests run on the in-memory twin, on SQLite and on PostgreSQL (``any_store``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clearq.errors import InvalidInput, NotFound
from clearq.models import ClaimOrder, QuotaKind, TaskSpec, TaskStatus
from tests.contract.test_store_contract import any_store

__all__ = ["any_store"]  # the fixture, shared with the store's contract

USER, PROJECT = QuotaKind.USER, QuotaKind.PROJECT


def _queued(store: Any, queue: str, user: str, project: str = "p", **kw: Any) -> uuid.UUID:
    spec = TaskSpec(project=project, name=f"{user}-{queue}", user=user)
    task_id: uuid.UUID = store.tasks.create(spec).id
    store.queues.enqueue(task_id, queue, **kw)
    return task_id


def _claim(store: Any, worker: str, queues: list[str], n: int = 1, **kw: Any) -> list[uuid.UUID]:
    return [c.task_id for c in store.claimer(worker, queues, **kw).claim(n)]


def test_quotas_are_set_listed_replaced_and_cleared(any_store: Any) -> None:
    any_store.quotas.set(PROJECT, "vision", max_gpus=8)
    quota = any_store.quotas.set(USER, "alice", max_running=4, max_gpus=8)
    assert (quota.kind, quota.name, quota.max_running, quota.max_gpus) == (USER, "alice", 4, 8)
    assert (quota.running, quota.gpus) == (0, 0)
    any_store.quotas.set(USER, "alice", max_running=2)  # replaces, GPU limit lifted
    assert [(q.kind, q.name, q.max_running, q.max_gpus) for q in any_store.quotas.list()] == [
        (USER, "alice", 2, None),
        (PROJECT, "vision", None, 8),
    ]
    any_store.quotas.clear(USER, "alice")
    with pytest.raises(NotFound, match="clearq quota list"):
        any_store.quotas.clear(USER, "alice")
    with pytest.raises(NotFound):
        any_store.quotas.get(USER, "alice")
    with pytest.raises(InvalidInput, match="needs a limit"):
        any_store.quotas.set(USER, "bob")
    with pytest.raises(InvalidInput, match="negative"):
        any_store.quotas.set(USER, "bob", max_gpus=-1)
    with pytest.raises(InvalidInput, match="empty"):
        any_store.quotas.set(USER, " ", max_running=1)


def test_a_user_at_their_running_quota_waits_while_another_users_task_runs(any_store: Any) -> None:
    any_store.queues.create("q")
    any_store.quotas.set(USER, "alice", max_running=2)
    alice = [_queued(any_store, "q", "alice") for _ in range(3)]
    bob = _queued(any_store, "q", "bob")
    [first] = any_store.claimer("w1", ["q"]).claim()
    assert [first.task_id, *_claim(any_store, "w2", ["q"])] == alice[:2]
    assert _claim(any_store, "w3", ["q"]) == [bob]  # alice's third is passed over
    assert _claim(any_store, "w4", ["q"]) == []
    assert any_store.quotas.get(USER, "alice").running == 2
    any_store.leases.finish(first.fence, TaskStatus.COMPLETED, exit_code=0)
    assert _claim(any_store, "w5", ["q"]) == [alice[2]]  # room again


def test_a_gpu_quota_counts_each_running_tasks_queue_gpus(any_store: Any) -> None:
    any_store.queues.create("big", gpus=4)
    any_store.queues.create("small", gpus=1)
    any_store.quotas.set(USER, "alice", max_gpus=5)
    big = [_queued(any_store, "big", "alice") for _ in range(2)]
    small = [_queued(any_store, "small", "alice") for _ in range(2)]
    assert _claim(any_store, "w1", ["big"]) == [big[0]]
    assert _claim(any_store, "w2", ["big"]) == []  # 4 + 4 > 5
    assert _claim(any_store, "w3", ["big", "small"]) == [small[0]]  # 4 + 1 fits
    assert _claim(any_store, "w4", ["small"]) == []  # 5 + 1 > 5
    assert any_store.quotas.get(USER, "alice").gpus == 5
    assert {t.id for t in any_store.tasks.list(status=TaskStatus.QUEUED)} == {big[1], small[1]}


def test_a_project_quota_holds_across_users_and_a_zero_quota_stops_claims(any_store: Any) -> None:
    any_store.queues.create("q")
    any_store.quotas.set(PROJECT, "vision", max_running=1)
    a = _queued(any_store, "q", "alice", project="vision")
    b = _queued(any_store, "q", "bob", project="vision")
    c = _queued(any_store, "q", "bob", project="nlp")
    assert _claim(any_store, "w", ["q"], 3) == [a, c]
    assert any_store.tasks.get(b).status is TaskStatus.QUEUED
    any_store.quotas.set(USER, "carol", max_running=0)
    _queued(any_store, "q", "carol", project="nlp")
    any_store.quotas.clear(PROJECT, "vision")
    assert _claim(any_store, "w2", ["q"], 3) == [b]  # carol may run nothing


def test_a_batch_claim_does_not_take_more_than_a_quota_leaves(any_store: Any) -> None:
    for name in ("a", "b"):
        any_store.queues.create(name)
    any_store.quotas.set(USER, "alice", max_running=3)
    alice = {q: [_queued(any_store, q, "alice") for _ in range(3)] for q in ("a", "b")}
    bob = _queued(any_store, "b", "bob")
    got = _claim(any_store, "w", ["a", "b"], 10, order=ClaimOrder.ROUND_ROBIN)
    assert got == [alice["a"][0], alice["b"][0], alice["a"][1], bob]
    assert any_store.quotas.get(USER, "alice").running == 3
