"""The SDK's Task is a record plus a role chosen once; its process-wide state is one Session."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from clearq.errors import ChannelRefused, InvalidInput
from clearq.sdk import Task
from clearq.sdk.records import StoreRecords
from clearq.sdk.roles import Stored
from clearq.sdk.session import SESSION


def _stored_task() -> Task:
    return Task(StoreRecords(), task_id=uuid.uuid4(), project="p", name="n")


def test_a_task_not_run_here_has_the_stored_role_and_refuses_run_only_calls() -> None:
    task = _stored_task()
    assert isinstance(task._role, Stored)
    with pytest.raises(InvalidInput, match="not run by this process"):
        task.get_logger().report_scalar("loss", "train", 0.5, 1)
    with pytest.raises(InvalidInput, match="uploaded by the task's own run"):
        task.upload_artifact("x", {"a": 1})
    with pytest.raises(InvalidInput, match="for the task this process runs"):
        task.execute_remotely("default")
    task.flush()  # nothing reported here: nothing to write


def test_requirement_changes_go_to_the_session_not_to_the_class() -> None:
    saved = list(SESSION.extra_requirements), list(SESSION.ignored_requirements)
    try:
        Task.add_requirements("six", "1.16.0")
        Task.ignore_requirements(["tomli"])
        assert SESSION.extra_requirements[-1] == "six==1.16.0"
        assert SESSION.ignored_requirements[-1] == "tomli"
        mutable_class_attributes = [
            name
            for name, value in vars(Task).items()
            if isinstance(value, list | dict | set) and not name.startswith("__")
        ]
        assert mutable_class_attributes == []
    finally:
        SESSION.extra_requirements[:], SESSION.ignored_requirements[:] = saved


def test_under_a_channel_without_a_url_there_is_no_store_and_no_database_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLEARQ_CHANNEL", str(tmp_path / "channel.sock"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLEARQ_DATABASE_URL", raising=False)
    monkeypatch.delenv("CLEARQ_HOME", raising=False)
    monkeypatch.setattr(SESSION, "store", None)
    with pytest.raises(ChannelRefused, match="--allow-controllers"):
        Task.get_task(task_id=uuid.uuid4())
    assert not (tmp_path / ".clearq").exists()


def test_the_role_answers_the_run_only_questions_once_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from clearq.config import Settings
    from clearq.models import TaskSpec
    from clearq.sdk.roles import LocalRun
    from clearq.testing import MemoryStore

    twin = MemoryStore(settings=Settings(home=tmp_path / "home"))
    monkeypatch.setattr(SESSION, "store", twin)
    monkeypatch.setattr(SESSION, "records", None)
    spec = TaskSpec(project="p", name="n", parameters={"properties/a": "1", "properties/b": "2"})
    stored = Task.get_task(task_id=twin.tasks.create(spec).id)
    assert stored.get_initial_iteration() == 0
    with pytest.raises(InvalidInput, match="set by the task's own run"):
        stored.set_initial_iteration(5)
    with pytest.raises(InvalidInput, match="uploaded by the task's own run"):
        stored.register_artifact("rows", object())
    assert stored.delete_user_properties("a")
    assert twin.tasks.get(stored._id).parameters == {"properties/b": "2"}

    run: Any = SimpleNamespace(
        reporter=SimpleNamespace(iteration_offset=0), settle_code=lambda **_: None
    )  # its code captured already
    running = Task(
        StoreRecords(twin),  # type: ignore[arg-type]
        task_id=stored._id,
        project="p",
        name="n",
        role=LocalRun(run),
    )
    assert running.set_initial_iteration(7) == 7
    assert (running.get_initial_iteration(), run.reporter.iteration_offset) == (7, 7)
    with pytest.raises(InvalidInput, match="can be set, not deleted"):
        running.delete_user_properties("b")
    assert twin.tasks.get(stored._id).parameters == {"properties/b": "2"}


def test_the_last_task_is_remembered_under_the_same_key_as_before(tmp_path: Path) -> None:
    """The key hashes the database URL with sha256 (without loading OpenSSL's hashlib)."""
    import hashlib
    import json

    from clearq.sdk.init_options import LAST_TASKS_FILE, last_task, remember_task

    url, task_id = "postgresql://u:secret@db/x", uuid.uuid4()
    remember_task(tmp_path, url, "p", "n", task_id)
    key = f"{hashlib.sha256(url.encode()).hexdigest()[:16]}/p/n"
    assert json.loads((tmp_path / LAST_TASKS_FILE).read_text()) == {key: str(task_id)}
    assert last_task(tmp_path, url, "p", "n") == task_id


def test_remembering_the_same_task_again_leaves_the_file_as_it_is(tmp_path: Path) -> None:
    from clearq.sdk.init_options import LAST_TASKS_FILE, remember_task

    task_id = uuid.uuid4()
    remember_task(tmp_path, "sqlite:///x", "p", "n", task_id)
    path = tmp_path / LAST_TASKS_FILE
    path.write_text(path.read_text() + "\n")  # a mark an unneeded rewrite would drop
    remember_task(tmp_path, "sqlite:///x", "p", "n", task_id)
    assert path.read_text().endswith("}\n")
    remember_task(tmp_path, "sqlite:///x", "p", "n", uuid.uuid4())
    assert not path.read_text().endswith("\n")
