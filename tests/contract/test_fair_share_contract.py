"""The store's contract for fair share: whose entry of equal priority a claim takes.

The same tests run on the in-memory twin, on SQLite and on PostgreSQL (``any_store``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from clearq.errors import InvalidInput, NotFound
from clearq.models import Claim, FairShare, TaskSpec, TaskStatus
from tests.contract.test_store_contract import any_store

__all__ = ["any_store"]  # the fixture, shared with the store's contract


def _queued(store: Any, queue: str, user: str, project: str = "p", **kw: Any) -> uuid.UUID:
    spec = TaskSpec(project=project, name=user, user=user)
    task_id: uuid.UUID = store.tasks.create(spec).id
    store.queues.enqueue(task_id, queue, **kw)
    return task_id


def _one(store: Any, queues: list[str] | None = None) -> Claim:
    [claim] = store.claimer("w", queues or ["fair"]).claim()
    return claim


def _done(store: Any, claim: Claim) -> None:
    store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)


def test_a_fair_share_queue_serves_the_user_with_the_least_usage(any_store: Any) -> None:
    queue = any_store.queues.create("fair", fair_share=FairShare.USER, half_life_seconds=3600)
    assert (queue.fair_share, queue.fair_half_life) == (FairShare.USER, 3600)
    a = [_queued(any_store, "fair", "alice") for _ in range(3)]
    b = [_queued(any_store, "fair", "bob") for _ in range(2)]
    first = _one(any_store)
    assert first.task_id == a[0]  # nobody has used the queue: first in, first out
    second = _one(any_store)
    assert second.task_id == b[0]  # alice has a task running, bob none
    third = _one(any_store)
    assert third.task_id == a[1]  # one each running: first in again
    _done(any_store, second)  # bob's run: a moment
    time.sleep(0.3)
    _done(any_store, first)  # alice's two: longer
    _done(any_store, third)
    urgent = _queued(any_store, "fair", "alice", priority=5)
    fourth = _one(any_store)
    assert fourth.task_id == urgent  # priority comes before fairness
    _done(any_store, fourth)
    assert _one(any_store).task_id == b[1]  # bob used less than alice, though a[2] is older
    assert _one(any_store).task_id == a[2]


def test_a_batch_from_a_fair_queue_takes_turns(any_store: Any) -> None:
    any_store.queues.create("fair", fair_share=FairShare.USER)
    any_store.queues.create("plain")
    a = [_queued(any_store, "fair", "alice") for _ in range(3)]
    b = [_queued(any_store, "fair", "bob") for _ in range(2)]
    p = _queued(any_store, "plain", "carol")
    got = [c.task_id for c in any_store.claimer("w", ["fair", "plain"]).claim(10)]
    assert got == [a[0], b[0], a[1], b[1], a[2], p]


def test_projects_share_a_queue_and_a_queue_turns_fair_and_back(any_store: Any) -> None:
    any_store.queues.create("fair")
    v = [_queued(any_store, "fair", "alice", project="vision") for _ in range(2)]
    n = _queued(any_store, "fair", "bob", project="nlp")
    queue = any_store.queues.set_fair_share("fair", FairShare.PROJECT, half_life_seconds=60)
    assert (queue.fair_share, queue.fair_half_life) == (FairShare.PROJECT, 60)
    assert _one(any_store).task_id == v[0]
    assert _one(any_store).task_id == n  # vision has one running, nlp none
    assert any_store.queues.set_fair_share("fair", None).fair_share is None
    assert _one(any_store).task_id == v[1]
    with pytest.raises(InvalidInput, match="half-life"):
        any_store.queues.set_fair_share("fair", FairShare.USER, half_life_seconds=0)
    with pytest.raises(NotFound):
        any_store.queues.set_fair_share("nowhere", FairShare.USER)


def test_a_fair_queue_keeps_its_cap_and_the_users_quotas(any_store: Any) -> None:
    from clearq.models import QuotaKind

    any_store.queues.create("fair", fair_share=FairShare.USER, max_running=2)
    any_store.quotas.set(QuotaKind.USER, "bob", max_running=0)
    a = [_queued(any_store, "fair", "alice") for _ in range(3)]
    _queued(any_store, "fair", "bob")
    got = [c.task_id for c in any_store.claimer("w", ["fair"]).claim(5)]
    assert got == a[:2]  # bob may run nothing; the cap stops alice's third
