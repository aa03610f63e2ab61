"""OutputModel and InputModel on a real store: weights kept where the artifacts are, rows
written through the run's fence, models found again by id and by name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from clearq import InputModel, OutputModel, Task
from clearq.errors import InvalidInput, LeaseLost, NotFound
from clearq.models import Fence, TaskStatus
from clearq.scheduler import Store
from clearq.sdk.task import use_store
from tests.runs import start_run


@pytest.fixture
def task(store: Store, store_url: str, tmp_path: Path) -> Iterator[Task]:
    use_store(store)
    made = start_run(store_url, tmp_path / "out", project="models", name="train")
    yield made
    made.close()
    use_store(None)


def test_an_output_model_keeps_its_weights_labels_and_configuration(
    task: Task, store: Store, tmp_path: Path
) -> None:
    weights = tmp_path / "net.pt"
    torch.save({"w": torch.arange(4.0)}, weights)
    model = OutputModel(
        task,
        name="classifier",
        framework="PyTorch",
        label_enumeration={"cat": 0, "dog": 1},
        config_dict={"layers": 2},
    )
    assert model.url is None
    url = model.update_weights(weights, iteration=7)
    assert url.startswith("file://")
    assert model.url == url
    assert str(tmp_path / "out" / task.id / "models" / model.id) in url

    stored = store.registry.get(uuid.UUID(model.id))
    assert (stored.name, stored.framework, stored.iteration) == ("classifier", "PyTorch", 7)
    assert stored.labels == {"cat": 0, "dog": 1}
    assert stored.config == {"layers": 2}
    assert stored.size == weights.stat().st_size
    assert stored.sha256 is not None

    found = task.models["output"]
    assert [m.name for m in found] == ["classifier"]
    assert found["classifier"].id == model.id
    loaded = InputModel(model_id=model.id)
    assert torch.load(loaded.get_local_copy())["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert InputModel(name="classifier", project="models").id == model.id
    assert loaded.labels == {"cat": 0, "dog": 1}
    with pytest.raises(NotFound, match="no model named"):
        InputModel(name="classifier", project="elsewhere")


def test_a_package_of_files_is_zipped_and_extracted_on_load(task: Task, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\x00\x01")
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    model = OutputModel(task, name="package", framework="ONNX")
    assert model.update_weights_package(weights_path=folder).endswith(".zip")
    local = Path(InputModel(model.id).get_local_copy())
    assert (local / "sub" / "vocab.txt").read_text() == "a\nb\n"
    assert (local / "model.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(InvalidInput, match="weights_filenames or weights_path"):
        model.update_weights_package()


def test_an_input_model_is_recorded_on_the_task(task: Task, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    base = OutputModel(task, name="base")
    base.update_weights(weights)
    InputModel(base.id).connect(task, name="backbone")
    assert task.get_parameters()["Models/backbone"] == base.id
    assert [m.id for m in task.models["input"]] == [base.id]


def test_a_superseded_run_cannot_change_its_models(task: Task, store: Store) -> None:
    model = OutputModel(task, name="late")
    run = task._run
    assert run is not None
    fence = Fence(task_id=run.fence.task_id, attempt=run.fence.attempt, worker=None)
    store.leases.finish(fence, TaskStatus.FAILED, reason="ended elsewhere")
    with pytest.raises(LeaseLost):
        model.update_labels({"x": 1})
    assert store.registry.get(uuid.UUID(model.id)).labels == {}
    with pytest.raises(InvalidInput, match="task this process runs"):
        OutputModel(Task.get_task(task_id=task.id), name="not mine")
