"""``clearq quota`` as a user runs it, and a real agent keeping a user's quota."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli, read_marks
from tests.acceptance.test_agent import JOB
from tests.gitrepo import published


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare origin holding job.py; returns (origin, commit)."""
    repository = published(tmp_path, {"job.py": JOB}, message="job")
    return repository.origin, repository.commit


def _job(
    store: Store, repo: tuple[Path, str], name: str, user: str, marks: Path, sleep: float
) -> uuid.UUID:
    origin, commit = repo
    code = Script(repository=str(origin), commit=commit, entry_point="job.py")
    parameters = {"General/sleep": str(sleep), "General/marks": str(marks)}
    spec = TaskSpec(project="p", name=name, script=code, parameters=parameters, user=user)
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    return task_id


def test_quotas_from_the_command_line(cli: Cli) -> None:
    assert "no quotas" in cli.run("quota", "list").stdout
    out = cli.run("quota", "set", "--user", "alice", "--running", "4", "--gpus", "8").stdout
    assert "user alice: at most 4 running task(s) and at most 8 GPU(s) at once" in out
    cli.run("quota", "set", "--project", "vision", "--gpus", "2")
    listed = cli.json("quota", "list")
    assert [(q["kind"], q["name"], q["max_running"], q["max_gpus"]) for q in listed] == [
        ("user", "alice", 4, 8),
        ("project", "vision", None, 2),
    ]
    rows = [line.split() for line in cli.run("quota", "list").stdout.splitlines()]
    assert rows == [
        ["KIND", "NAME", "RUNNING", "GPUS"],
        ["user", "alice", "0/4", "0/8"],
        ["project", "vision", "0", "0/2"],
    ]
    assert "needs a limit" in cli.fails("quota", "set", "--user", "bob")
    assert "one user" in cli.fails("quota", "set", "--user", "a", "--project", "b", "--gpus", "1")
    assert "has no quota" in cli.run("quota", "clear", "--project", "vision").stdout
    assert "no quota for project 'vision'" in cli.fails("quota", "clear", "--project", "vision")


def test_a_user_at_their_quota_waits_while_another_users_task_runs(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    cli.run("quota", "set", "--user", "alice", "--running", "2")
    marks = tmp_path / "marks.jsonl"
    ids = [_job(store, repo, f"alice{i}", "alice", marks, sleep=3) for i in range(3)]
    ids.append(_job(store, repo, "bob", "bob", marks, sleep=0))
    agents.run("-q", "q", "--services-mode", "3", "--idle-exit", "2")
    assert all(store.tasks.get(i).status is TaskStatus.COMPLETED for i in ids)
    runs: dict[str, Any] = {r["name"]: r for r in read_marks(marks)}
    # The agent had a free slot, but alice's third waited for one of her two to end;
    # bob's task, enqueued after it, ran in that slot meanwhile.
    assert runs["alice2"]["start"] >= min(runs["alice0"]["end"], runs["alice1"]["end"])
    assert runs["bob"]["start"] < runs["alice2"]["start"]
