"""The SDK's task management surface on a real store: create, clone, enqueue, wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq import Task
from clearq.errors import InvalidInput, TaskEnded, WaitTimeout
from clearq.models import Artifact, TaskStatus
from clearq.scheduler import Store
from clearq.sdk import artifacts as artifact_files
from clearq.sdk.task import use_store


@pytest.fixture
def sdk(store: Store) -> Iterator[Store]:
    use_store(store)
    yield store
    use_store(None)


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text("print('job')\n")
    return path


def test_create_from_a_local_script_and_from_a_repository(sdk: Store, tmp_path: Path) -> None:
    local = Task.create("p", "local", script=str(_script(tmp_path)), packages=["numpy==2.0.0"])
    assert local.script.source == "print('job')\n"
    assert local.env.requirements == ("numpy==2.0.0",)
    remote = Task.create(
        "p",
        "remote",
        script="train.py",
        repo="https://user:secret@example.com/team/repo.git",
        branch="main",
        commit="abc123",
        argparse_args=[("lr", "0.1")],
    )
    assert remote.script.repository == "https://example.com/team/repo.git"
    assert remote.get_parameters() == {"Args/lr": "0.1"}
    assert remote.status is TaskStatus.CREATED


@pytest.mark.parametrize(
    "line", ["-e git+https://evil.example/x.git", "--index-url https://evil.example/simple"]
)
def test_create_refuses_pip_options_in_requirements(sdk: Store, tmp_path: Path, line: str) -> None:
    with pytest.raises(InvalidInput, match="index_urls"):
        Task.create("p", "bad", script=str(_script(tmp_path)), packages=[line])
    assert sdk.tasks.list() == []


def test_clone_override_enqueue_both_forms(sdk: Store, tmp_path: Path) -> None:
    sdk.queues.create("default")
    sdk.queues.create("services")
    base = Task.create("p", "base", script=str(_script(tmp_path)), argparse_args=[("lr", "0.1")])
    child = Task.clone(source_task=base, name="lr=0.5")
    assert child.data.parent_id == base.data.id
    assert child.script == base.script
    child.set_parameters({"Args/lr": 0.5})
    assert child.get_parameter("Args/lr", 0.0) == 0.5
    assert base.get_parameters() == {"Args/lr": "0.1"}
    Task.enqueue(child, queue_name="default")
    assert child.status is TaskStatus.QUEUED
    other = Task.clone(base.id)
    other.enqueue("services", priority=2)
    assert sdk.tasks.get(other.data.id).queue == "services"
    child.dequeue()
    assert child.status is TaskStatus.CREATED


def test_get_task_by_id_and_by_name(sdk: Store, tmp_path: Path) -> None:
    made = Task.create("proj", "named", script=str(_script(tmp_path)))
    assert Task.get_task(task_id=made.id).name == "named"
    assert Task.get_task(project_name="proj", task_name="named").id == made.id
    assert [t.id for t in Task.get_tasks(project_name="proj")] == [made.id]
    with pytest.raises(InvalidInput):
        Task.get_task(project_name="proj", task_name="missing")
    with pytest.raises(InvalidInput, match="not a task id"):
        Task.get_task(task_id="nope")


def test_wait_for_status_returns_when_the_task_ends(sdk: Store, tmp_path: Path) -> None:
    sdk.queues.create("default")
    task = Task.create("p", "w", script=str(_script(tmp_path)))
    task.enqueue("default")

    def agent() -> None:
        time.sleep(0.3)
        [claim] = sdk.claimer("w", ["default"]).claim()
        sdk.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)

    thread = threading.Thread(target=agent)
    thread.start()
    assert task.wait_for_status(check_interval_sec=0.05, timeout=10) is TaskStatus.COMPLETED
    thread.join()
    with pytest.raises(WaitTimeout):
        Task.create("p", "never", script=str(_script(tmp_path))).wait_for_status(
            check_interval_sec=0.01, timeout=0.05
        )


def test_wait_for_status_raises_clearqs_own_error_on_a_failure(sdk: Store, tmp_path: Path) -> None:
    sdk.queues.create("default")
    task = Task.create("p", "w", script=str(_script(tmp_path)))
    task.enqueue("default")
    [claim] = sdk.claimer("w", ["default"]).claim()
    sdk.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=3, reason="exited with 3")
    with pytest.raises(TaskEnded, match="ended failed: exited with 3") as ended:
        task.wait_for_status(check_interval_sec=0.01, timeout=10)
    assert isinstance(ended.value, RuntimeError)  # what ClearML's raises, still caught


def test_mark_stopped_says_why_and_force_does_not_wait(sdk: Store, tmp_path: Path) -> None:
    sdk.queues.create("default")
    polite, forced = (Task.create("p", n, script=str(_script(tmp_path))) for n in ("a", "b"))
    polite.enqueue("default")
    forced.enqueue("default")
    claims = {str(c.task_id): c for c in sdk.claimer("w", ["default"]).claim(2)}
    polite.mark_stopped(status_message="enough")
    fence = claims[polite.id].fence
    beat = sdk.leases.heartbeat("w", [fence])
    assert beat.stop_reasons == {fence.task_id: "stop requested: enough"}
    assert polite.status is TaskStatus.RUNNING  # until its worker stops it
    forced.mark_stopped(force=True, status_message="now")
    assert forced.status is TaskStatus.STOPPED
    assert sdk.tasks.get(claims[forced.id].task_id).status_reason == "stop requested: now (forced)"


def test_pickled_artifacts_need_consent_both_ways(tmp_path: Path) -> None:
    class Opaque:
        pass

    import uuid

    task_id = uuid.uuid4()
    with pytest.raises(InvalidInput, match="allow_pickle"):
        artifact_files.store_artifact(tmp_path, task_id, "obj", Opaque())
    stored = artifact_files.store_artifact(tmp_path, task_id, "obj", {1, 2}, allow_pickle=True)
    assert stored.kind == "pickle"
    with pytest.raises(InvalidInput, match="allow_pickle=True only if you trust"):
        artifact_files.load_artifact(stored)
    assert artifact_files.load_artifact(stored, allow_pickle=True) == {1, 2}


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", ".hidden", "..", "my data (v2)", "ü ✓"])
def test_any_printable_artifact_name_stays_in_its_task_folder(tmp_path: Path, name: str) -> None:
    import uuid

    task_id = uuid.uuid4()
    stored = artifact_files.store_artifact(tmp_path, task_id, name, "x")
    assert stored.name == name
    path = artifact_files.local_path(stored)
    assert path.parent.parent == tmp_path / str(task_id)
    assert artifact_files.load_artifact(stored) == "x"


@pytest.mark.parametrize("name", ["", "   ", "two\nlines", "nul\x00", "x" * 256])
def test_artifact_names_that_are_not_printable_text_are_refused(tmp_path: Path, name: str) -> None:
    import uuid

    with pytest.raises(InvalidInput, match="not allowed"):
        artifact_files.store_artifact(tmp_path, uuid.uuid4(), name, "x")
    assert list(tmp_path.iterdir()) == []


def test_artifact_round_trips(tmp_path: Path) -> None:
    import uuid

    task_id = uuid.uuid4()
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00\x01")
    for name, obj in [("d", {"a": [1, 2]}), ("t", "text"), ("b", b"\xff"), ("f", source)]:
        stored = artifact_files.store_artifact(tmp_path / "out", task_id, name, obj)
        loaded = artifact_files.load_artifact(stored)
        assert (loaded.read_bytes() if isinstance(loaded, Path) else loaded) == (
            source.read_bytes() if isinstance(obj, Path) else obj
        )
        assert isinstance(stored, Artifact)


def test_artifacts_go_to_an_fsspec_url_and_come_back(tmp_path: Path) -> None:
    import uuid

    pytest.importorskip("fsspec")
    task_id = uuid.uuid4()
    stored = artifact_files.upload_artifact(
        "memory://bucket/runs", task_id, "cfg", {"lr": 0.1}, staging=tmp_path / "staging"
    )
    assert stored.uri == f"memory://bucket/runs/{task_id}/cfg/cfg.json"
    assert list((tmp_path / "staging" / str(task_id)).iterdir()) == []
    local = artifact_files.fetch_artifact(stored, cache=tmp_path / "cache")
    assert local.uri.startswith("file://")
    assert artifact_files.load_artifact(local) == {"lr": 0.1}


def test_a_remote_output_uri_without_fsspec_support_says_what_to_install(tmp_path: Path) -> None:
    import uuid

    with pytest.raises(InvalidInput, match="fsspec"):
        artifact_files.upload_artifact("nosuchscheme://x", uuid.uuid4(), "a", "t", staging=tmp_path)
