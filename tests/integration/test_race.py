"""Real OS processes race to claim and complete the same queue.

Every task must be completed exactly once: none lost, none claimed twice.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import sqlalchemy as sa

from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import tasks
from tests.integration.helpers import bulk_queued

SIZES = {"postgresql": (8, 5000), "sqlite": (4, 5000)}


def _drain(url: str, home: str, worker: str, start: mp.synchronize.Event) -> list[str]:
    """One worker process: claim and complete until the queue is empty."""
    done: list[str] = []
    with Store(url, settings=Settings(home=Path(home))) as store:
        claimer = store.claimer(worker, ["race"])
        start.wait()
        while True:
            claims = claimer.claim()
            if not claims:
                if store.queues.get("race").length == 0:
                    return done
                continue
            for claim in claims:
                store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
                done.append(str(claim.task_id))


def test_every_task_completed_exactly_once(store: Store, tmp_path: Path) -> None:
    processes, count = SIZES[store.db.dialect]
    store.queues.create("race")
    ids = {str(t) for t in bulk_queued(store, "race", count)}
    url = store.db.url.render_as_string(hide_password=False)

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(processes) as pool:
            results = [
                pool.apply_async(_drain, (url, str(tmp_path), f"h:w{i}", start))
                for i in range(processes)
            ]
            start.set()
            per_worker = [r.get(timeout=300) for r in results]

    completed = [task_id for done in per_worker for task_id in done]
    assert len(completed) == count, "a task was completed twice or lost"
    assert set(completed) == ids
    assert sum(1 for done in per_worker if done) > 1, "only one worker got work: no race"
    with store.db.read() as conn:
        rows = conn.execute(sa.select(tasks.c.status, tasks.c.attempt, tasks.c.worker)).all()
    assert {(r.status, r.attempt) for r in rows} == {("completed", 1)}
    assert store.queues.get("race").length == 0


@pytest.mark.parametrize("batch", [10])
def test_batch_claims_race_too(store: Store, tmp_path: Path, batch: int) -> None:
    store.queues.create("race")
    ids = {str(t) for t in bulk_queued(store, "race", 600)}
    url = store.db.url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        per_worker = pool.starmap(
            _drain_batches, [(url, str(tmp_path), f"h:b{i}", batch) for i in range(3)]
        )
    completed = [t for done in per_worker for t in done]
    assert sorted(completed) == sorted(ids)


def _drain_batches(url: str, home: str, worker: str, batch: int) -> list[str]:
    done: list[str] = []
    with Store(url, settings=Settings(home=Path(home))) as store:
        claimer = store.claimer(worker, ["race"])
        while True:
            claims = claimer.claim(batch)
            if not claims and store.queues.get("race").length == 0:
                return done
            for claim in claims:
                store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
                done.append(str(claim.task_id))
