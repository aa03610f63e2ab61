"""A full disk under the environment cache: the machine's failure, never the task's.

The test mounts a small tmpfs as the agent's env cache (it needs root and ``mount``; it
says so and skips where it cannot), so the build runs out of space for real. The task
goes back to its queue spending one attempt, nothing half built is left to be taken for
an environment, the agent's heartbeats go on through the failing build (a reaper runs
beside it on a short lease), and once there is room again the task runs in a fresh
build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.envs import EnvCache
from clearq.models import EnvSpec, Script, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import AGENT_WAIT_SECONDS, CLEARQ, Cli
from tests.gitrepo import published

TRAIN = "import yaml\nprint('built and ran with yaml', yaml.__version__)\n"
YAML = f"PyYAML=={metadata.version('PyYAML')}"
CACHE_SIZE = "20m"
SHORT_LEASE_SECONDS = "1.5"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The test's own store reaps on the agents' short lease (SQLite: its own watch)."""
    return Settings(home=tmp_path / "home", lease_seconds=float(SHORT_LEASE_SECONDS))


def _mount_tmpfs(folder: Path) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs for the env cache needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={CACHE_SIZE}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_cache(cli: Cli) -> Iterator[Path]:
    """The agent's env cache folder, a 20 MB tmpfs for the test's length."""
    envs = Path(cli.env["CLEARQ_HOME"]) / "envs"
    envs.mkdir(parents=True)
    _mount_tmpfs(envs)
    try:
        yield envs
    finally:
        subprocess.run(["umount", "-l", str(envs)], check=False)


def _agent(cli: Cli, *args: str) -> forkserver.Result:
    return forkserver.run(
        [str(CLEARQ), "agent", "-q", "q", "--once", "--allow-local-repositories", *args],
        env={**cli.env, "CLEARQ_LEASE_SECONDS": SHORT_LEASE_SECONDS},
        timeout=AGENT_WAIT_SECONDS * 5,
    )


class _Reaper:
    """Reaps expired leases while the agent works: a silent agent would lose its task."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.reaped: list[object] = []

    def __enter__(self) -> _Reaper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(0.3):
            report = self._store.leases.reap()
            self.reaped.extend([*report.requeued, *report.failed])


def test_a_full_env_cache_requeues_the_task_and_leaves_no_half_built_env(
    cli: Cli, store: Store, tmp_path: Path, small_cache: Path
) -> None:
    store.queues.create("q")
    repository = published(tmp_path, {"train.py": TRAIN}, message="train")
    script = Script(
        repository=str(repository.origin), commit=repository.commit, entry_point="train.py"
    )
    env = EnvSpec(requirements=(YAML,))
    spec = TaskSpec(project="disk", name="full", script=script, env=env)
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")

    with _Reaper(store) as reaper:
        full = _agent(cli)
    assert reaper.reaped == [], full.stderr  # the agent kept renewing its lease
    assert full.returncode == OnceExit.REQUEUED, full.stderr
    task = store.tasks.get(task_id)
    assert (task.status, task.tries) == (TaskStatus.QUEUED, 1)  # one attempt spent
    assert "environment failed: " in task.status_reason
    assert "ran out of disk space" in task.status_reason
    log = "".join(line.text for line in store.outputs.logs(task_id))
    assert "No space left on device" in log  # the installer's own words
    cache = EnvCache(small_cache)
    assert cache.entries() == []
    assert [p.name for p in small_cache.iterdir() if not p.name.startswith(".")] == []
    assert list((small_cache / ".tmp").iterdir()) == []

    subprocess.run(["umount", "-l", str(small_cache)], check=True)  # room again
    again = _agent(cli)
    assert again.returncode == OnceExit.COMPLETED, again.stderr
    task = store.tasks.get(task_id)
    assert (task.status, task.attempt) == (TaskStatus.COMPLETED, 2)
    assert task.runtime["env"]["hit"] is False  # built afresh, nothing of the first taken
    assert "built and ran with yaml" in "".join(x.text for x in store.outputs.logs(task_id))
