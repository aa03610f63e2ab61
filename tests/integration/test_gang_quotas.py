"""Quotas hold gangs as they hold plain tasks: every rank counts (a running task with its
queue's GPUs), a gang starts only when all its ranks fit, atomically against the agents'
claims (``clearq.scheduler.quotas``, ``clearq.scheduler.gangs``), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid

from clearq.models import Claim, QuotaKind, Script, TaskSpec, TaskStatus
from clearq.scheduler import Store

SCRIPT = Script(source="", entry_point="x.py")


def _gang(store: Store, queue: str, nodes: int, user: str = "alice") -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name="gang", script=SCRIPT, user=user)).id
    store.queues.enqueue(task_id, queue, nodes=nodes)
    return task_id


def _plain(store: Store, queue: str, user: str = "alice") -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name="plain", script=SCRIPT, user=user)).id
    store.queues.enqueue(task_id, queue)
    return task_id


def _join(store: Store, worker: str) -> object:
    return store.gangs.join(worker, ["g"], address="10.0.0.1", port=1234)


def test_a_gang_waits_until_all_its_ranks_fit_the_user_s_quota(store: Store) -> None:
    store.queues.create("g", gpus=2)
    store.queues.create("q", gpus=2)
    store.quotas.set(QuotaKind.USER, "alice", max_running=2)
    gang = _gang(store, "g", nodes=3)
    assert _join(store, "h:a") is None  # three ranks never fit two: no agent waits for it
    store.quotas.set(QuotaKind.USER, "alice", max_running=3, max_gpus=6)
    joins = [_join(store, f"h:{w}") for w in "abc"]
    assert all(j is not None for j in joins)
    assert getattr(joins[-1], "claim", None) is not None
    assert store.tasks.get(gang).status is TaskStatus.RUNNING
    quota = store.quotas.get(QuotaKind.USER, "alice")
    assert (quota.running, quota.gpus) == (3, 6)  # each rank, with its queue's GPUs
    # The user's plain task waits: her gang's ranks hold her quota.
    plain = _plain(store, "q")
    assert store.claimer("h:d", ["q"]).claim(1) == []
    other = _plain(store, "q", user="bob")
    [claim] = store.claimer("h:d", ["q"]).claim(1)
    assert claim.task_id == other
    assert store.tasks.get(plain).status is TaskStatus.QUEUED


def test_the_last_rank_s_join_checks_the_quota_again(store: Store) -> None:
    store.queues.create("g")
    store.queues.create("q")
    store.quotas.set(QuotaKind.PROJECT, "p", max_running=2)
    gang = _gang(store, "g", nodes=2)
    first = _join(store, "h:a")
    assert first is not None
    _plain(store, "q")
    assert len(store.claimer("h:c", ["q"]).claim(1)) == 1  # the project's room: 1 left
    assert _join(store, "h:b") is None  # starting would make 3 running: refused
    task = store.tasks.get(gang)
    assert task.status is TaskStatus.QUEUED
    assert [rank for rank, _, _ in store.gangs.members(gang)] == [0]


def _race(store: Store, round_: int) -> tuple[list[Claim], list[object]]:
    """A plain claim and the gang's last join at once: what each got."""
    start = threading.Barrier(2)
    claimed: list[Claim] = []
    started: list[object] = []

    def claim() -> None:
        start.wait()
        claimed.extend(store.claimer(f"h:plain{round_}", ["q"]).claim(1))

    def join() -> None:
        start.wait()
        joined = _join(store, f"h:last{round_}")
        if joined is not None and getattr(joined, "claim", None) is not None:
            started.append(joined)

    threads = [threading.Thread(target=claim), threading.Thread(target=join)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return claimed, started


def test_a_gang_start_and_a_claim_never_both_take_the_last_room(store: Store) -> None:
    # Quota 2: a gang of 2 (one rank waiting) and a plain task race for it, 8 times.
    store.queues.create("g")
    store.queues.create("q")
    store.quotas.set(QuotaKind.USER, "alice", max_running=2)
    for round_ in range(8):
        gang = _gang(store, "g", nodes=2)
        assert _join(store, f"h:first{round_}") is not None
        plain = _plain(store, "q")
        claimed, started = _race(store, round_)
        assert len(claimed) + len(started) == 1, (round_, claimed, started)
        assert store.quotas.get(QuotaKind.USER, "alice").running <= 2
        # Clear the round: end whatever runs, take the rest out of their queues.
        for task_id in (gang, plain):
            task = store.tasks.get(task_id)
            if task.status is TaskStatus.RUNNING:
                store.leases.request_stop(task_id, force=True)
            elif task.status is TaskStatus.QUEUED:
                store.queues.dequeue(task_id)
        assert store.quotas.get(QuotaKind.USER, "alice").running == 0, round_
