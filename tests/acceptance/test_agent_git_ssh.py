"""A private repository over ssh, with a submodule whose relative URL resolves to the
same ssh server: a real agent clones both with its operator's key (``GIT_SSH_COMMAND``)
from a throwaway ``sshd`` on loopback, local repositories refused. Skipped where sshd
cannot run (``CLEARQ_REQUIRE_SSHD=1`` makes that a failure)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.models import Script, Submodule, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents
from tests.acceptance.test_agent import logs_of
from tests.gitrepo import git
from tests.sshserver import SshServer, keygen, ssh_server, sshd_problem

_WHO = ("-c", "user.name=t", "-c", "user.email=t@t")
_LOCAL = ("-c", "protocol.file.allow=always")
JOB = "from lib import core\nprint('over ssh:', core.VALUE, flush=True)\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SshServer]:
    problem = sshd_problem()
    if problem is not None:
        if os.environ.get("CLEARQ_REQUIRE_SSHD", "") not in ("", "0", "false"):
            pytest.fail(f"sshd is required (CLEARQ_REQUIRE_SSHD) but: {problem}")
        pytest.skip(problem)
    with ssh_server(tmp_path / "sshd") as running:
        yield running


def _bare_with(root: Path, name: str, files: dict[str, str]) -> tuple[Path, Path]:
    origin, work = root / f"{name}.git", root / f"{name}-work"
    git(root, "init", "-q", "--bare", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    for path, text in files.items():
        (work / path).write_text(text)
    git(work, "add", ".")
    git(work, *_WHO, "commit", "-qm", name)
    git(work, "push", "-q", "origin", "HEAD")
    return origin, work


def _task(store: Store, server: SshServer, root: Path) -> uuid.UUID:
    _, lib_work = _bare_with(root, "lib", {"core.py": "VALUE = 'the submodule'\n"})
    app_origin, app_work = _bare_with(root, "app", {"job.py": JOB})
    git(app_work, *_LOCAL, "submodule", "--quiet", "add", "../lib.git", "lib")
    git(app_work, *_WHO, "commit", "-qm", "lib")
    git(app_work, "push", "-q", "origin", "HEAD")
    script = Script(
        repository=server.url(app_origin),
        commit=git(app_work, "rev-parse", "HEAD"),
        entry_point="job.py",
        submodules=(
            Submodule(
                path="lib", repository="../lib.git", commit=git(lib_work, "rev-parse", "HEAD")
            ),
        ),
    )
    task_id = store.tasks.create(TaskSpec(project="git", name="ssh", script=script)).id
    store.queues.create("q")
    store.queues.enqueue(task_id, "q")
    return task_id


def test_an_agent_clones_a_private_repository_and_its_submodule_over_ssh(
    store: Store, agents: Agents, server: SshServer, tmp_path: Path
) -> None:
    task_id = _task(store, server, tmp_path)
    env = {"GIT_SSH_COMMAND": server.git_ssh_command(), "CLEARQ_ALLOW_LOCAL_REPOSITORIES": "0"}
    out = agents.run("-q", "q", "--once", env=env)
    assert f"task {task_id} completed" in out, out
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    assert "over ssh: the submodule" in logs_of(store, task_id)
    sshd_log = (tmp_path / "sshd" / "sshd.log").read_text()
    assert sshd_log.count("Accepted publickey") >= 2  # the repository and its submodule
    mirrors = sorted((tmp_path / "home" / "git-mirrors").glob("*.git/config"))
    urls = sorted(
        line.split("=", 1)[1].strip()
        for m in mirrors
        for line in m.read_text().splitlines()
        if "url =" in line
    )
    assert urls == [server.url(tmp_path / "app.git"), server.url(tmp_path / "lib.git")]


def test_with_a_key_the_server_does_not_know_the_clone_fails(
    store: Store, agents: Agents, server: SshServer, tmp_path: Path
) -> None:
    task_id = _task(store, server, tmp_path)
    stranger = keygen(tmp_path / "stranger_key")
    env = {"GIT_SSH_COMMAND": server.git_ssh_command(stranger)}
    agents.run("-q", "q", "--once", env=env, code=OnceExit.FAILED)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert "workspace clone failed" in task.status_reason
    assert "Permission denied" in task.status_reason  # git's own words, kept
    assert "Accepted publickey" not in (tmp_path / "sshd" / "sshd.log").read_text()
