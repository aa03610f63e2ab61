"""Logs, scalars, artifacts, the workers registry and metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput
from clearq.models import Artifact, GpuMetrics, ScalarPoint, TaskStatus, WorkerMetrics
from clearq.scheduler import Store
from tests.integration.helpers import queued


def _points(values: list[float], title: str = "loss", series: str = "train") -> list[ScalarPoint]:
    return [
        ScalarPoint(title=title, series=series, iteration=i, value=v) for i, v in enumerate(values)
    ]


def test_logs_in_order_and_resumable(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    [claim] = store.claimer("w", ["q"]).claim()
    store.outputs.append_logs(claim.fence, [("stdout", "a\n"), ("stderr", "b\n")])
    store.outputs.append_logs(claim.fence, [("stdout", "c\n")])
    lines = store.outputs.logs(task_id)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]
    assert [line.text for line in store.outputs.logs(task_id, after=lines[1].seq)] == ["c\n"]
    with pytest.raises(InvalidInput, match="unknown log streams"):
        store.outputs.append_logs(claim.fence, [("nope", "x")])


def test_scalar_summary_folds_batches_and_restarts_per_attempt(
    store_url: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, lease_seconds=0.3)
    with Store(store_url, settings=settings) as store:
        store.queues.create("q")
        task_id = queued(store, "q")
        [first] = store.claimer("w", ["q"]).claim()
        store.outputs.append_scalars(first.fence, _points([5, 3, 4]))
        store.outputs.append_scalars(first.fence, _points([9, 1]) + _points([7], title="acc"))
        summary = {(s.title, s.series): s for s in store.outputs.summary(task_id)}
        loss = summary[("loss", "train")]
        assert (loss.last, loss.min, loss.max, loss.last_iteration) == (1, 1, 9, 1)
        assert summary[("acc", "train")].last == 7

        store.leases.reap()  # SQLite's reaper watches the renewals stand still first
        time.sleep(0.5)
        store.leases.reap()
        [second] = store.claimer("w", ["q"]).claim()
        store.outputs.append_scalars(second.fence, _points([6, 8]))
        summary = {(s.title, s.series): s for s in store.outputs.summary(task_id)}
        loss = summary[("loss", "train")]
        assert (loss.last, loss.min, loss.max) == (8, 6, 8)
        assert [p.value for p in store.outputs.scalars(task_id, title="loss")] == [6, 8]


def test_artifacts_replace_by_name(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    [claim] = store.claimer("w", ["q"]).claim()
    store.outputs.add_artifact(claim.fence, Artifact(name="model", uri="file:///a/1.pt", size=3))
    store.outputs.add_artifact(claim.fence, Artifact(name="model", uri="file:///a/2.pt", size=4))
    store.outputs.add_artifact(claim.fence, Artifact(name="cfg", uri="file:///a/c.json"))
    arts = {a.name: a for a in store.outputs.artifacts(task_id)}
    assert sorted(arts) == ["cfg", "model"]
    assert arts["model"].uri == "file:///a/2.pt"
    assert arts["model"].size == 4


def test_workers_register_list_current_tasks_unregister(store: Store) -> None:
    store.queues.create("q")
    info = store.workers.register("h:w1", host="h", pid=42, queues=["q"], gpus=["0", "1"])
    assert info.queues == ("q",)
    assert info.gpus == ("0", "1")
    store.workers.register("h:w2", host="h", pid=43, queues=["q"])
    task_id = queued(store, "q")
    [claim] = store.claimer("h:w1", ["q"]).claim()
    workers = {w.id: w for w in store.workers.list()}
    assert workers["h:w1"].tasks == (task_id,)
    assert workers["h:w2"].tasks == ()
    store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    assert store.workers.get("h:w1").tasks == ()
    again = store.workers.register("h:w1", host="h", pid=44, queues=["q", "r"])
    assert again.pid == 44
    assert len(store.workers.list()) == 2
    store.workers.unregister("h:w1")
    assert [w.id for w in store.workers.list()] == ["h:w2"]


def test_metrics_latest_and_bounded_retention(store_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, metrics_retention_seconds=0.5)
    with Store(store_url, settings=settings) as store:
        gpu = GpuMetrics(index=0, utilization_percent=50, memory_used=1, memory_total=2)
        store.workers.record_metrics("h:w", WorkerMetrics(cpu_percent=10, gpus=(gpu,)))
        store.workers.record_metrics("h:w", WorkerMetrics(cpu_percent=20))
        store.workers.record_metrics("h:x", WorkerMetrics(cpu_percent=30))
        assert [s.metrics.cpu_percent for s in store.workers.metrics("h:w")] == [10, 20]
        assert store.workers.metrics("h:w")[0].metrics.gpus == (gpu,)
        latest = store.workers.latest_metrics()
        assert {k: v.metrics.cpu_percent for k, v in latest.items()} == {"h:w": 20, "h:x": 30}
        time.sleep(0.7)
        store.workers.record_metrics("h:w", WorkerMetrics(cpu_percent=40))
        assert [s.metrics.cpu_percent for s in store.workers.metrics("h:w")] == [40]
