"""The claim across queues: strict priority, round robin, batches."""

from __future__ import annotations

import pytest

from clearq.models import ClaimOrder, TaskStatus
from clearq.scheduler import Store
from tests.integration.helpers import queued


@pytest.fixture
def three_queues(store: Store) -> Store:
    for name in ("a", "b", "c"):
        store.queues.create(name)
    return store


def test_claim_marks_running_with_worker_attempt_and_lease(three_queues: Store) -> None:
    store = three_queues
    task_id = queued(store, "a")
    [claim] = store.claimer("host:w1", ["a"]).claim()
    assert claim.task_id == task_id
    assert claim.attempt == 1
    assert claim.queue == "a"
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.RUNNING
    assert task.worker == "host:w1"
    assert task.attempt == 1
    assert task.lease_expires_at is not None
    assert task.started_at is not None
    assert task.lease_expires_at > task.started_at
    assert store.queues.get("a").length == 0


def test_empty_and_unknown_queues_give_nothing(three_queues: Store) -> None:
    assert three_queues.claimer("w", ["a", "b", "missing"]).claim(5) == []


def test_strict_priority_drains_the_first_queue_first(three_queues: Store) -> None:
    store = three_queues
    a = [queued(store, "a", f"a{i}") for i in range(2)]
    b = [queued(store, "b", f"b{i}") for i in range(2)]
    claimer = store.claimer("w", ["b", "a"], order=ClaimOrder.STRICT)
    got = [claimer.claim()[0].task_id for _ in range(4)]
    assert got == b + a


def test_round_robin_rotates_between_claims(three_queues: Store) -> None:
    store = three_queues
    a = [queued(store, "a", f"a{i}") for i in range(3)]
    b = [queued(store, "b", f"b{i}") for i in range(1)]
    c = [queued(store, "c", f"c{i}") for i in range(2)]
    claimer = store.claimer("w", ["a", "b", "c"], order=ClaimOrder.ROUND_ROBIN)
    got = [claimer.claim()[0].task_id for _ in range(6)]
    assert got == [a[0], b[0], c[0], a[1], c[1], a[2]]
    assert claimer.claim() == []


def test_batch_claim_strict_takes_in_rank_order(three_queues: Store) -> None:
    store = three_queues
    a = [queued(store, "a", f"a{i}") for i in range(2)]
    b = [queued(store, "b", f"b{i}") for i in range(3)]
    claims = store.claimer("w", ["a", "b"]).claim(4)
    assert {c.task_id for c in claims} == set(a + b[:2])
    assert [c.queue for c in claims] == ["a", "a", "b", "b"]
    assert store.queues.get("b").length == 1


def test_batch_claim_round_robin_interleaves(three_queues: Store) -> None:
    store = three_queues
    a = [queued(store, "a", f"a{i}") for i in range(3)]
    b = [queued(store, "b", f"b{i}") for i in range(3)]
    claims = store.claimer("w", ["a", "b"], order=ClaimOrder.ROUND_ROBIN).claim(4)
    assert {c.task_id for c in claims} == {a[0], a[1], b[0], b[1]}


def test_claim_among_restricts_to_some_queues(three_queues: Store) -> None:
    store = three_queues
    queued(store, "a")
    b = queued(store, "b")
    claimer = store.claimer("w", ["a", "b"])
    assert [c.task_id for c in claimer.claim(among=["b"])] == [b]
    assert store.queues.get("a").length == 1


def test_two_claimers_never_get_the_same_task(three_queues: Store) -> None:
    store = three_queues
    ids = {queued(store, "a", f"t{i}") for i in range(10)}
    one, two = store.claimer("w1", ["a"]), store.claimer("w2", ["a"])
    got = [c.task_id for _ in range(5) for c in one.claim() + two.claim()]
    assert sorted(map(str, got)) == sorted(map(str, ids))


@pytest.mark.parametrize("order", [ClaimOrder.STRICT, ClaimOrder.ROUND_ROBIN])
def test_batch_claims_come_back_in_claim_order(three_queues: Store, order: ClaimOrder) -> None:
    store = three_queues
    low = queued(store, "a", "low", priority=0)
    high = queued(store, "a", "high", priority=9)
    mid = queued(store, "a", "mid", priority=5)
    b_first = queued(store, "b", "b-first")
    b_second = queued(store, "b", "b-second")
    claims = store.claimer("w", ["a", "b"], order=order).claim(5)
    got = [c.task_id for c in claims]
    if order is ClaimOrder.STRICT:
        assert got == [high, mid, low, b_first, b_second]
    else:
        assert got == [high, b_first, mid, b_second, low]
