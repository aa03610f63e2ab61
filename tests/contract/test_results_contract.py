"""The contract of what an attempt's channel writes for its task, on every store.

A task under an agent reaches the store only through its attempt channel
(``clearq.runtime.channel``), which takes a ``ChannelStore``: a run's batch of logs,
scalars, plots and debug samples, its artifacts, its models, its dependencies. The same
tests run on the in-memory twin, SQLite and PostgreSQL, so the channel's own tests on
the twin (``tests/integration/test_channel.py`` runs on all three) stand for the real
store.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from clearq.errors import LeaseLost, NotFound
from clearq.models import Artifact, Fence, ModelRecord, TaskSpec, TaskStatus
from clearq.scheduler.runlink_results import PlotRow, SampleRow
from tests.contract.test_store_contract import any_store  # noqa: F401 - the fixture

FIGURE = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}], "layout": {"title": "t"}}


def _running(store: Any, name: str = "t") -> Fence:
    queue = f"q-{name}"
    store.queues.create(queue)
    task_id = store.tasks.create(TaskSpec(project="p", name=name)).id
    store.queues.enqueue(task_id, queue)
    [claim] = store.claimer("w", [queue]).claim()
    assert claim.task_id == task_id
    fence: Fence = claim.fence
    return fence


def _sample(uri: str, iteration: int, series: str = "s") -> SampleRow:
    return SampleRow("img", series, iteration, "image", uri, "image/png", 10)


def test_a_batch_keeps_logs_scalars_plots_and_samples_of_the_attempt(any_store: Any) -> None:  # noqa: F811
    fence = _running(any_store)
    any_store.outputs.append_batch(
        fence,
        [("stdout", "hello\n")],
        [("loss", "train", 1, 0.5), ("loss", "train", 2, 0.25)],
        plots=[PlotRow("hist", "a", 1, "histogram", json.dumps(FIGURE))],
        samples=[_sample("file:///out/img_0.png", 1), _sample("file:///out/img_1.png", 2)],
    )
    # A later sample written to a reused file (max_image_history) replaces that row.
    any_store.outputs.append_batch(
        fence,
        [],
        [],
        plots=[PlotRow("hist", "a", 2, "histogram", json.dumps(FIGURE))],
        samples=[_sample("file:///out/img_0.png", 3)],
    )
    assert [line.text for line in any_store.outputs.logs(fence.task_id)] == ["hello\n"]
    assert [p.value for p in any_store.outputs.scalars(fence.task_id)] == [0.5, 0.25]
    [summary] = any_store.outputs.summary(fence.task_id)
    assert (summary.last, summary.min, summary.last_iteration) == (0.25, 0.25, 2)
    plots = any_store.reported.plots(fence.task_id)
    assert [(p.title, p.iteration, p.kind, p.figure) for p in plots] == [
        ("hist", 1, "histogram", FIGURE),
        ("hist", 2, "histogram", FIGURE),
    ]
    assert [p.iteration for p in any_store.reported.plots(fence.task_id, max_iterations=1)] == [2]
    samples = any_store.reported.samples(fence.task_id)
    assert [(s.iteration, s.uri) for s in samples] == [
        (2, "file:///out/img_1.png"),
        (3, "file:///out/img_0.png"),
    ]
    assert {s.attempt for s in samples} == {fence.attempt}


def test_a_batch_of_a_superseded_attempt_is_refused_whole(any_store: Any) -> None:  # noqa: F811
    fence = _running(any_store)
    stale = fence.model_copy(update={"attempt": fence.attempt + 1})
    with pytest.raises(LeaseLost):
        any_store.outputs.append_batch(
            stale,
            [("stdout", "x\n")],
            [("loss", "train", 1, 1.0)],
            plots=[PlotRow("p", "a", 1, "plotly", json.dumps(FIGURE))],
        )
    assert any_store.outputs.logs(fence.task_id) == []
    assert any_store.outputs.scalars(fence.task_id) == []
    assert any_store.reported.plots(fence.task_id) == []
    with pytest.raises(ValueError, match="unknown plot or sample kinds"):
        any_store.outputs.append_batch(
            fence, [], [], plots=[PlotRow("p", "a", 1, "pie-chart", json.dumps(FIGURE))]
        )


def test_artifacts_are_recorded_by_name_and_replaced(any_store: Any) -> None:  # noqa: F811
    fence = _running(any_store)
    any_store.outputs.add_artifact(fence, Artifact(name="weights", uri="file:///a/w1", size=1))
    any_store.outputs.add_artifact(fence, Artifact(name="config", uri="file:///a/c", size=2))
    any_store.outputs.add_artifact(fence, Artifact(name="weights", uri="file:///a/w2", size=3))
    found = any_store.outputs.artifacts(fence.task_id)
    assert [(a.name, a.uri, a.size) for a in found] == [
        ("config", "file:///a/c", 2),
        ("weights", "file:///a/w2", 3),
    ]
    stale = fence.model_copy(update={"worker": "another"})
    with pytest.raises(LeaseLost):
        any_store.outputs.add_artifact(stale, Artifact(name="x", uri="file:///a/x"))


def test_models_are_saved_fenced_updated_by_id_and_found_by_name(any_store: Any) -> None:  # noqa: F811
    first = _running(any_store, "a")
    model = ModelRecord(
        id=uuid.uuid4(), task_id=first.task_id, name="resnet", framework="PyTorch", uri="file:///m1"
    )
    saved = any_store.registry.save(first, model)
    assert (saved.task_id, saved.name, saved.uri) == (first.task_id, "resnet", "file:///m1")
    again = any_store.registry.save(first, model.model_copy(update={"uri": "file:///m2"}))
    assert again.uri == "file:///m2"
    assert any_store.registry.get(model.id).uri == "file:///m2"
    assert [m.id for m in any_store.registry.of_task(first.task_id)] == [model.id]
    assert any_store.registry.find("resnet").id == model.id
    assert any_store.registry.find("resnet", project="p").id == model.id
    with pytest.raises(NotFound):
        any_store.registry.find("resnet", project="elsewhere")
    with pytest.raises(NotFound):
        any_store.registry.get(uuid.uuid4())
    stale = first.model_copy(update={"attempt": first.attempt + 1})
    with pytest.raises(LeaseLost):
        any_store.registry.save(stale, model.model_copy(update={"id": uuid.uuid4()}))
    assert len(any_store.registry.of_task(first.task_id)) == 1


def test_a_reset_forgets_what_the_runs_reported_and_a_delete_names_its_files(
    any_store: Any,  # noqa: F811
) -> None:
    fence = _running(any_store)
    any_store.outputs.append_batch(
        fence,
        [],
        [],
        plots=[PlotRow("p", "a", 1, "plotly", json.dumps(FIGURE))],
        samples=[_sample("file:///out/s.png", 1)],
    )
    model = ModelRecord(id=uuid.uuid4(), task_id=fence.task_id, name="m", uri="file:///out/m.pt")
    any_store.registry.save(fence, model)
    any_store.leases.finish(fence, TaskStatus.COMPLETED, exit_code=0)
    deleted = any_store.cleanup.delete([fence.task_id])
    assert set(deleted.files) == {"file:///out/s.png", "file:///out/m.pt"}
    with pytest.raises(NotFound):
        any_store.registry.get(model.id)

    other = _running(any_store, "other")
    any_store.outputs.append_batch(
        other, [], [], plots=[PlotRow("p", "a", 1, "plotly", json.dumps(FIGURE))]
    )
    any_store.registry.save(other, model.model_copy(update={"task_id": other.task_id}))
    any_store.leases.finish(other, TaskStatus.COMPLETED, exit_code=0)
    any_store.tasks.reset(other.task_id)
    assert any_store.reported.plots(other.task_id) == []
    assert any_store.registry.of_task(other.task_id) == []


def test_a_task_names_the_parents_it_waits_for(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    a = any_store.tasks.create(TaskSpec(project="p", name="a")).id
    b = any_store.tasks.create(TaskSpec(project="p", name="b")).id
    child = any_store.tasks.create(TaskSpec(project="p", name="c")).id
    any_store.queues.enqueue(child, "q", depends_on=[b, a])
    assert any_store.tasks.parents(child) == sorted([a, b])
    assert any_store.tasks.parents(a) == []
