"""A fair-share queue as a user runs it: a real agent serves two users' tasks in turns."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from clearq.models import FairShare, Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli
from tests.acceptance.test_agent import JOB
from tests.gitrepo import published


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare origin holding job.py; returns (origin, commit)."""
    repository = published(tmp_path, {"job.py": JOB}, message="job")
    return repository.origin, repository.commit


def _job(store: Store, repo: tuple[Path, str], name: str, user: str) -> uuid.UUID:
    origin, commit = repo
    code = Script(repository=str(origin), commit=commit, entry_point="job.py")
    spec = TaskSpec(project="p", name=name, script=code, user=user)
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "fair")
    return task_id


def test_two_users_tasks_are_served_in_turns(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    # A short half-life: the run that ended longer ago weighs clearly less, whatever the
    # runs' own lengths on a busy machine.
    out = cli.run("queue", "create", "fair", "--fair-share", "user", "--half-life", "0.2s").stdout
    assert "fair share by user" in out
    # Alice queues all hers first: first in, first out would run them all before bob's.
    ids = [_job(store, repo, f"a{i}", "alice") for i in range(3)]
    ids += [_job(store, repo, f"b{i}", "bob") for i in range(3)]
    agents.run("-q", "fair", "--idle-exit", "2")
    runs = sorted((store.tasks.get(i) for i in ids), key=lambda t: t.started_at or 0)
    assert all(t.status is TaskStatus.COMPLETED for t in runs)
    assert [t.name for t in runs] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert store.queues.get("fair").fair_share is FairShare.USER
    assert "first in, first out" in cli.run("queue", "fair-share", "fair", "off").stdout
