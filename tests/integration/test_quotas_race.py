"""Quotas hold against claimers racing in separate processes, as a queue's cap does; a
fair-share queue hands each task out once to racing claimers."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from pathlib import Path

from clearq.config import Settings
from clearq.models import FairShare, QuotaKind, TaskStatus
from clearq.scheduler import Store
from tests.integration.helpers import new_task


def _claimer_process(url: str, home: str, worker: str, seconds: float, out: object) -> None:
    with Store(url, settings=Settings(home=Path(home))) as store:
        claimer = store.claimer(worker, ["gpu", "cpu"])
        deadline = time.monotonic() + seconds
        got = 0
        while time.monotonic() < deadline:
            got += len(claimer.claim(2))
        out.put(got)  # type: ignore[attr-defined]


def test_quotas_hold_against_racing_claimers(store: Store, store_url: str, tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    store.queues.create("gpu", gpus=2)
    store.queues.create("cpu")
    store.quotas.set(QuotaKind.USER, "alice", max_running=3, max_gpus=4)
    store.quotas.set(QuotaKind.PROJECT, "vision", max_running=4)
    for i in range(12):  # alternate, so that both limits of alice's are met
        store.queues.enqueue(new_task(store, f"a{i}", user="alice"), ("gpu", "cpu")[i % 2])
        store.queues.enqueue(new_task(store, f"b{i}", user="bob", project="vision"), "cpu")
    for i in range(6):
        store.queues.enqueue(new_task(store, f"c{i}", user="carol"), "gpu")
    out = spawn.Queue()
    procs = [
        spawn.Process(target=_claimer_process, args=(store_url, str(tmp_path), f"w{i}", 3.0, out))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    got = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    running = store.tasks.list(status=TaskStatus.RUNNING, limit=100)
    by_user = {u: [t for t in running if t.user == u] for u in ("alice", "bob", "carol")}
    assert got == len(running) == 3 + 4 + 6
    assert len(by_user["alice"]) == 3
    assert sum(2 for t in by_user["alice"] if t.queue == "gpu") <= 4
    assert len(by_user["bob"]) == 4
    alice = store.quotas.get(QuotaKind.USER, "alice")
    assert alice.running == 3
    assert alice.gpus <= 4


def _fair_claimer(url: str, home: str, worker: str, out: object) -> None:
    with Store(url, settings=Settings(home=Path(home))) as store:
        claimer = store.claimer(worker, ["fair"])
        got: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and store.queues.get("fair").length:
            got.extend(str(c.task_id) for c in claimer.claim(1))
        out.put(got)  # type: ignore[attr-defined]


def test_racing_claimers_drain_a_fair_queue_each_task_once(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    store.queues.create("fair", fair_share=FairShare.USER)
    ids = {str(new_task(store, f"{user}{i}", user=user)) for i in range(20) for user in ("a", "b")}
    for task_id in sorted(ids):
        store.queues.enqueue(uuid.UUID(task_id), "fair")
    out = spawn.Queue()
    procs = [
        spawn.Process(target=_fair_claimer, args=(store_url, str(tmp_path), f"w{i}", out))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    got = [task_id for _ in procs for task_id in out.get(timeout=90)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(got) == sorted(ids)  # every task once: none lost, none twice
