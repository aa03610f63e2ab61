"""ClearML's Task queries, labels and deletion on a real store (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq import Task
from clearq.errors import InvalidInput, LeaseLost, NotFound
from clearq.models import Artifact, TaskStatus
from clearq.scheduler import Store
from clearq.sdk.task import use_store
from clearq.task_parameters import TaskParameters, param, percent_param


@pytest.fixture
def sdk(store: Store) -> Iterator[Store]:
    use_store(store)
    yield store
    use_store(None)


def _draft(tmp_path: Path, project: str, name: str, task_type: str = "training") -> Task:
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    return Task.create(project, name, script=str(script), task_type=task_type)


def test_get_tasks_filters_as_clearml_means_them(sdk: Store, tmp_path: Path) -> None:
    a = _draft(tmp_path, "vision", "train resnet")
    b = _draft(tmp_path, "vision", "train vit", task_type="testing")
    c = _draft(tmp_path, "nlp", "train bert")
    a.add_tags(["best", "v1"])
    b.add_tags("v1")
    c.set_archived(True)
    names = lambda tasks: sorted(t.name for t in tasks)  # noqa: E731
    # As in ClearML, archived tasks are listed unless told not to.
    assert names(Task.get_tasks(task_name="train", allow_archived=False)) == [
        "train resnet",
        "train vit",
    ]
    assert names(Task.get_tasks(task_name="train")) == ["train bert", "train resnet", "train vit"]
    assert c.get_archived()
    assert "archived" not in c.get_tags()
    assert names(Task.get_tasks(task_name="^train (r|v)")) == ["train resnet", "train vit"]
    assert names(Task.get_tasks(project_name=["vision", "nlp"], tags=["v1"])) == [
        "train resnet",
        "train vit",
    ]
    assert names(Task.get_tasks(tags=["v1", "-best"])) == ["train vit"]
    assert names(Task.get_tasks(allow_archived=False)) == ["train resnet", "train vit"]
    assert names(Task.get_tasks(task_filter={"type": ["testing"]})) == ["train vit"]
    assert names(Task.get_tasks(task_ids=[a.id, c.id])) == ["train bert", "train resnet"]
    ordered = Task.get_tasks(project_name="vision", task_filter={"order_by": ["name"]})
    assert [t.name for t in ordered] == ["train resnet", "train vit"]
    assert Task.get_tasks(task_filter={"status": ["in_progress"]}) == []
    assert Task.get_task(project_name="vision", task_name="train vit").id == b.id
    assert Task.get_task(tags=["best"]).id == a.id
    with pytest.raises(InvalidInput, match="unknown keys \\['colour'\\]"):
        Task.get_tasks(task_filter={"colour": "red"})


def test_labels_change_in_any_status_and_properties_are_parameters(
    sdk: Store, tmp_path: Path
) -> None:
    task = _draft(tmp_path, "p", "labels")
    sdk.queues.create("default")
    task.enqueue("default")
    task.set_name("renamed")
    task.set_comment("why")
    task.add_tags(["x", "x", "y"])
    assert (task.name, task.comment, task.get_tags()) == ("renamed", "why", ["x", "y"])
    task.dequeue()
    task.set_user_properties(("lr", 0.1), {"name": "net", "value": "resnet"}, stable=True)
    assert task.get_user_properties(value_only=True) == {
        "lr": "0.1",
        "net": "resnet",
        "stable": "True",
    }
    assert task.get_user_properties()["net"] == {
        "section": "properties",
        "name": "net",
        "value": "resnet",
    }
    task.delete_user_properties("lr")
    assert "lr" not in task.get_user_properties(value_only=True)
    assert task.get_project_name() == "p"
    assert task.get_status() is TaskStatus.CREATED
    assert Task.TaskTypes.qc.value == "qc"


def test_delete_removes_the_task_and_its_artifact_files(sdk: Store, tmp_path: Path) -> None:
    task = _draft(tmp_path, "p", "doomed")
    fence = sdk.tasks.start(task.data.id)
    weights = tmp_path / "out" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"w")
    sdk.outputs.add_artifact(fence, Artifact(name="weights", uri=weights.as_uri()))
    with pytest.raises(InvalidInput, match="running: abort it first"):
        sdk.cleanup.delete([task.data.id])
    assert not task.delete(raise_on_error=False)
    assert task.delete(force=True) is True
    assert not weights.exists()
    with pytest.raises(NotFound):
        sdk.tasks.get(task.data.id)


def test_a_run_by_hand_can_give_its_task_back_as_a_draft(sdk: Store, tmp_path: Path) -> None:
    task = _draft(tmp_path, "p", "release")
    fence = sdk.tasks.start(task.data.id)
    sdk.outputs.append_logs(fence, [("stdout", "hello\n")])
    released = sdk.admin.release_run(fence)
    assert released.status is TaskStatus.CREATED
    assert sdk.outputs.logs(task.data.id) == []
    again = sdk.admin.take_over(task.data.id, keep_outputs=False)
    assert again.attempt == fence.attempt + 1
    sdk.outputs.append_logs(again, [("stdout", "second\n")])
    assert [line.text for line in sdk.outputs.logs(task.data.id)] == ["second\n"]
    with pytest.raises(LeaseLost):
        sdk.outputs.append_logs(fence, [("stdout", "stale\n")])


class Params(TaskParameters):
    iterations = param(type=int, desc="Number of iterations to run", range=(0, 100))
    target_accuracy = percent_param(desc="The target accuracy", default=0.5)


def test_task_parameters_check_types_and_ranges() -> None:
    params = Params(iterations=10)
    assert params.to_dict() == {"iterations": 10, "target_accuracy": 0.5}
    params.update_from_dict({"target_accuracy": 1})
    assert params.target_accuracy == 1.0
    with pytest.raises(InvalidInput, match="iterations must be in range"):
        Params(iterations=101)
    with pytest.raises(InvalidInput, match="must be int"):
        params.iterations = "many"
    with pytest.raises(InvalidInput, match="Unknown key depth"):
        params.update_from_dict({"depth": 3})
    with pytest.raises(InvalidInput, match="needs a value for 'iterations'"):
        Params()


def test_parameters_in_clearmls_other_forms(sdk: Store, tmp_path: Path) -> None:
    task = _draft(tmp_path, "p", "params")
    task.set_parameter("General/lr", 0.1)
    task.set_parameters_as_dict({"Args": {"epochs": 3, "layers": [1, 2]}})
    assert task.get_parameters_as_dict() == {
        "General": {"lr": "0.1"},
        "Args": {"epochs": "3", "layers": "[1, 2]"},
    }
    assert task.get_parameters_as_dict(cast=True)["Args"] == {"epochs": 3, "layers": [1, 2]}


def test_a_take_over_clears_what_a_reset_clears() -> None:
    from clearq.scheduler.takeover import OUTPUT_TABLES
    from clearq.scheduler.tasks import RESET_TABLES

    assert set(OUTPUT_TABLES) == {t.name for t in RESET_TABLES}
