"""The orchestration page's read-only views (``store.views``), on both dialects."""

from __future__ import annotations

import time

from clearq.models import Fence, GpuMetrics, ScalarPoint, TaskStatus, WorkerMetrics
from clearq.scheduler import Store
from tests.integration.helpers import new_task, queued


def test_queue_stats_count_waiting_running_serving_and_busy(store: Store) -> None:
    for name in ("a", "b"):
        store.queues.create(name, gpus=1 if name == "a" else 0)
    store.workers.register("h:w1", host="h", pid=1, queues=["a", "b"])
    store.workers.register("h:w2", host="h", pid=2, queues=["b"])
    first = queued(store, "a", "first")
    queued(store, "a", "second")
    assert [c.task_id for c in store.claimer("h:w1", ["a"]).claim()] == [first]
    stats = {s.name: s for s in store.views.queue_stats()}
    a, b = stats["a"], stats["b"]
    assert (a.gpus, a.waiting, a.running, a.serving, a.busy) == (1, 1, 1, ("h:w1",), 1)
    assert (b.waiting, b.running, b.serving, b.busy) == (0, 0, ("h:w1", "h:w2"), 1)
    assert a.oldest_enqueued_at is not None
    assert b.oldest_enqueued_at is None
    assert a.average_wait_seconds is not None
    assert a.average_wait_seconds >= 0
    assert b.average_wait_seconds is None


def test_queue_position_follows_claim_order(store: Store) -> None:
    store.queues.create("q")
    ids = [queued(store, "q", f"t{i}") for i in range(3)]
    assert [store.views.queue_position(i) for i in ids] == [(1, 3), (2, 3), (3, 3)]
    store.queues.move_to_front(ids[2])
    assert store.views.queue_position(ids[2]) == (1, 3)
    assert store.views.queue_position(new_task(store)) is None


def test_worker_series_is_bounded_and_downsampled(store: Store) -> None:
    gpu = GpuMetrics(index=0, utilization_percent=50, memory_used=10, memory_total=20)
    for cpu in (10.0, 30.0):
        store.workers.record_metrics("h:w", WorkerMetrics(cpu_percent=cpu, gpus=(gpu,)))
    store.workers.record_metrics("h:other", WorkerMetrics(cpu_percent=99))
    series = store.views.worker_series("h:w", range_seconds=3600, buckets=1)
    assert len(series) == 1
    assert series[0].metrics.cpu_percent == 20.0
    assert series[0].metrics.gpus == (gpu,)
    # A sub-worker of services mode shows its agent's machine.
    assert len(store.views.worker_series("h:w:2", range_seconds=3600)) == 1
    assert store.views.worker_series("h:none", range_seconds=3600) == []


def test_worker_activity_counts_reporting_and_running(store: Store) -> None:
    store.queues.create("q")
    store.workers.register("h:w", host="h", pid=1, queues=["q"])
    store.workers.record_metrics("h:w", WorkerMetrics(cpu_percent=1))
    store.workers.record_metrics("h:idle", WorkerMetrics(cpu_percent=1))
    queued(store, "q")
    assert len(store.claimer("h:w", ["q"]).claim()) == 1
    points = store.views.worker_activity(range_seconds=600, buckets=10)
    assert len(points) == 10
    assert points[-1].total == 2
    assert points[-1].active == 1
    assert points[0].active == 0


def test_queue_series_lengths_and_waits(store: Store) -> None:
    store.queues.create("q")
    store.queues.create("empty")
    queued(store, "q", "runs")
    queued(store, "q", "waits")
    time.sleep(0.05)
    assert len(store.claimer("h:w", ["q"]).claim()) == 1
    series = store.views.queue_series(range_seconds=600, buckets=6)
    assert sorted(series) == ["empty", "q"]
    assert [p.length for p in series["q"]][-1] == 1
    assert all(p.length == 0 for p in series["empty"])
    waits = [p.average_wait_seconds for p in series["q"] if p.average_wait_seconds is not None]
    assert len(waits) == 1
    assert waits[0] >= 0.04


def test_scalar_series_is_downsampled_per_series(store: Store) -> None:
    task_id = new_task(store)
    fence = store.tasks.start(task_id)
    points = [ScalarPoint(title="loss", series="train", iteration=i, value=i) for i in range(100)]
    points.append(ScalarPoint(title="acc", series="val", iteration=0, value=0.5))
    store.outputs.append_scalars(fence, points)
    series = store.views.scalar_series(task_id, points=10)
    loss = [p for p in series if p.title == "loss"]
    assert len(loss) == 10
    assert loss[0].value == 4.5
    assert loss[-1].iteration == 99
    assert [(p.title, p.value) for p in series if p.title == "acc"] == [("acc", 0.5)]
    store.leases.finish(Fence(task_id=task_id, attempt=1, worker=None), TaskStatus.COMPLETED)
    assert store.views.projects() == ["p"]
