"""A private repository over HTTPS with basic auth, cloned by a real agent whose
operator gave it a credentials file: the token reaches git through a credential helper
only, never the database, the task's logs, the agent's output or any process's argv."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from clearq.scheduler.schema import metadata
from tests.acceptance.conftest import Agents, Cli
from tests.acceptance.test_agent import logs_of
from tests.gitrepo import published
from tests.gitserver import GitServer, git_server

TOKEN = f"tok-{uuid.uuid4().hex}"
JOB = 'print("private code runs", flush=True)\n'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    root = tmp_path / "served"
    root.mkdir()
    published(root, {"job.py": JOB})
    with git_server(root, tmp_path, user="alice", token=TOKEN) as running:
        yield running


def _credentials(tmp_path: Path, server: GitServer, mode: int = 0o600) -> Path:
    path = tmp_path / "git-credentials"
    path.write_text(f"https://alice:{TOKEN}@127.0.0.1:{server.port}\n")
    path.chmod(mode)
    return path


def _task(store: Store, server: GitServer) -> uuid.UUID:
    script = Script(repository=server.url("origin.git"), entry_point="job.py")
    task_id = store.tasks.create(TaskSpec(project="git", name="private", script=script)).id
    store.queues.create("q")
    store.queues.enqueue(task_id, "q")
    return task_id


def test_a_private_repository_is_cloned_with_the_operators_token_kept_out_of_sight(
    store: Store, store_url: str, cli: Cli, agents: Agents, server: GitServer, tmp_path: Path
) -> None:
    credentials = _credentials(tmp_path, server)
    before = credentials.read_text()
    task_id = _task(store, server)
    env = {"CLEARQ_GIT_CREDENTIALS": str(credentials), "GIT_SSL_CAINFO": str(server.ca_file)}
    out = agents.run("-q", "q", "--once", env=env)
    assert f"task {task_id} completed" in out, out
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    log = logs_of(store, task_id)
    assert "private code runs" in log
    assert server.refused >= 1
    assert server.served >= 1
    assert server.argv_leaks == []  # no process's command line held the token mid-fetch
    shown = cli.run("task", "show", str(task_id), "--json").stdout
    for text in (out, log, shown):
        assert TOKEN not in text
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            for table in metadata.sorted_tables:  # every row of every table
                for row in connection.execute(sa.select(table)):
                    assert TOKEN not in repr(tuple(row)), table.name
    finally:
        engine.dispose()
    mirrors = tmp_path / "home" / "git-mirrors"
    for config in mirrors.glob("*.git/config"):
        assert TOKEN not in config.read_text()
    assert credentials.read_text() == before  # git's helper only read it


def test_without_credentials_the_task_fails_saying_git_could_not_authenticate(
    store: Store, agents: Agents, server: GitServer
) -> None:
    task_id = _task(store, server)
    agents.run(
        "-q", "q", "--once", env={"GIT_SSL_CAINFO": str(server.ca_file)}, code=OnceExit.FAILED
    )
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert "workspace clone failed" in task.status_reason
    assert server.served == 0


def test_an_agent_refuses_a_credentials_file_others_can_read(
    cli: Cli, server: GitServer, tmp_path: Path, agents: Agents
) -> None:
    credentials = _credentials(tmp_path, server, mode=0o644)
    env = {"CLEARQ_GIT_CREDENTIALS": str(credentials)}
    result = cli.run("agent", "--skip-env", "-q", "q", "--once", check=False, env=env)
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    assert str(credentials) in result.stderr
    assert TOKEN not in result.stderr
    assert os.stat(credentials).st_mode & 0o777 == 0o644  # left as the operator made it
