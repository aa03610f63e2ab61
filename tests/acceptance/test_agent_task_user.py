"""``clearq agent --task-user NAME``: host-mode tasks run as another, real OS user.

The test creates the user (``useradd``; the tests run as root) and runs the agent with
the system's ``python3`` (the task user must be able to run the agent's interpreter; the
test venv's lives under ``/root``, which only root may enter). The task probes what it
can reach of its agent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.test_agent import logs_of

SYSTEM_PYTHON = Path("/usr/bin/python3")
REPO = Path(__file__).resolve().parents[2]

PROBE = """
import os, pathlib
print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups())
print("user", os.environ.get("USER"), "home", os.environ.get("HOME"))
assert "CLEARQ_HOME" not in os.environ  # the agent keeps its home to itself
home = pathlib.Path(AGENT_HOME)
def attempt(what, action):
    try:
        action()
        print(what, "allowed")
    except OSError as e:
        print(what, "refused", type(e).__name__)
attempt("read the database", lambda: open(home / "clearq.db", "rb").read(1))
# The task's parent is its watchdog (running as the task user too); the agent is above it.
stat = open(f"/proc/{os.getppid()}/stat").read()
agent = int(stat.rsplit(")", 1)[1].split()[1])
attempt("read the agent's environment", lambda: open(f"/proc/{agent}/environ").read())
attempt("list the run folders", lambda: os.listdir(home / "runs"))
attempt("list the mirrors", lambda: os.listdir(home / "git-mirrors"))
attempt("write the env cache", lambda: open(home / "envs" / "poison", "w").write("x"))
attempt("write its run folder", lambda: open("made-by-the-task.txt", "w").write("x"))
own = home / "artifacts" / os.environ["CLEARQ_TASK_ID"] / "a.txt"
attempt("write its artifacts folder", lambda: own.write_text("x"))
"""

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or not SYSTEM_PYTHON.exists(),
    reason="needs root, useradd and /usr/bin/python3",
)


@pytest.fixture
def task_user() -> Iterator[str]:
    name = f"cq{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
    yield name
    subprocess.run(["userdel", name], check=True)


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A CLEARQ_HOME whose parents the task user may pass (pytest's own are root's)."""
    parent = Path(tempfile.mkdtemp(prefix="clearq-task-user-"))
    parent.chmod(0o755)
    yield parent / "home"
    shutil.rmtree(parent)


def _agent(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_HOME=str(home), PYTHONPATH=f"{REPO}{os.pathsep}{site}")
    command = [str(SYSTEM_PYTHON), "-c", "from clearq.cli import main; main()", "agent"]
    return subprocess.run(
        [*command, "--skip-env", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_root
def test_a_task_runs_as_the_task_user_and_reaches_nothing_of_its_agents(
    task_user: str, open_home: Path
) -> None:
    store = Store(settings=Settings(home=open_home))
    try:
        store.queues.create("q")
        spec = TaskSpec(
            project="p",
            name="probe",
            script=Script(
                source=PROBE.replace("AGENT_HOME", repr(str(open_home))), entry_point="p.py"
            ),
        )
        task_id = store.tasks.create(spec).id
        store.queues.enqueue(task_id, "q")
        done = _agent(open_home, "-q", "q", "--once", "--task-user", task_user)
        assert done.returncode == 0, (done.stderr, logs_of(store, task_id))
        task = store.tasks.get(task_id)
        log = logs_of(store, task_id)
        assert task.status is TaskStatus.COMPLETED, log
    finally:
        store.close()
    uid = subprocess.run(["id", "-u", task_user], capture_output=True, text=True).stdout.strip()
    assert f"uid {uid} " in log
    assert f"user {task_user} " in log
    for refused in (
        "read the database",
        "read the agent's environment",
        "list the run folders",
        "list the mirrors",
        "write the env cache",
    ):
        assert f"{refused} refused PermissionError" in log
    assert "write its run folder allowed" in log
    assert "write its artifacts folder allowed" in log


@needs_root
def test_the_task_user_must_exist_and_not_be_root(open_home: Path) -> None:
    missing = _agent(open_home, "-q", "q", "--once", "--task-user", "clearq-no-such-user")
    assert missing.returncode == 1
    assert "no such user on this machine" in missing.stderr
    root = _agent(open_home, "-q", "q", "--once", "--task-user", "root")
    assert root.returncode == 1
    assert "is root: give an unprivileged user" in root.stderr
