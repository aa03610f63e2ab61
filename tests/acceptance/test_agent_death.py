"""A task's process dies with its agent, and a frozen agent's goes before its lease passes.

Real ``clearq agent`` processes, real signals (SIGKILL, SIGSTOP/SIGCONT), a real store;
the Docker test uses the real engine and the test image. Each waits on conditions with
generous deadlines: nothing here depends on how loaded the machine is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import psutil
import pytest

from clearq.config import Settings
from clearq.envs.docker_engine import DockerEngine
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.runtime.orphans import (
    AGENT_LABEL,
    HOST_LABEL,
    PID_LABEL,
    STARTED_LABEL,
    owner_labels,
)
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli
from tests.gitrepo import published
from tests.integration.conftest import DOCKER_TEST_IMAGE
from tests.integration.conftest import docker_engine as docker_engine  # the shared fixture

HOLD = """
import os, sys, time
from pathlib import Path

folder = Path(sys.argv[1])
(folder / f"pid-{os.environ['CLEARQ_ATTEMPT']}").write_text(str(os.getpid()))
time.sleep(float(sys.argv[2]))
"""

DEADLINE_SECONDS = 60.0
SHORT_LEASE_SECONDS = "1.5"
SHORT_LEASE = {"CLEARQ_LEASE_SECONDS": SHORT_LEASE_SECONDS}


@pytest.fixture
def pids(tmp_path: Path) -> Path:
    folder = tmp_path / "pids"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The test's own store reaps on the agents' short lease (SQLite: its own watch)."""
    return Settings(home=tmp_path / "home", lease_seconds=float(SHORT_LEASE_SECONDS))


def _hold(store: Store, tmp_path: Path, pids: Path, seconds: float = 300) -> uuid.UUID:
    repository = published(tmp_path, {"hold.py": HOLD}, message="hold")
    script = Script(
        repository=str(repository.origin),
        commit=repository.commit,
        entry_point="hold.py",
        arguments=(str(pids), str(seconds)),
    )
    task_id = store.tasks.create(TaskSpec(project="death", name="hold", script=script)).id
    store.queues.enqueue(task_id, "q")
    return task_id


def _pid_of(pids: Path, attempt: int) -> int:
    path = pids / f"pid-{attempt}"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"attempt {attempt} never started"
        time.sleep(0.05)
    return int(path.read_text())


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while _running(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def test_a_killed_agents_task_process_dies_with_it(
    store: Store, agents: Agents, tmp_path: Path, pids: Path
) -> None:
    store.queues.create("q")
    _hold(store, tmp_path, pids)
    agent = agents.start("-q", "q")
    pid = _pid_of(pids, 1)
    assert _running(pid)
    agent.kill()  # SIGKILL: the agent can do nothing about its task
    agent.wait()
    _wait_gone(pid)


def test_a_frozen_agents_task_process_is_ended_by_its_watchdog_before_the_lease_passes(
    store: Store, agents: Agents, tmp_path: Path, pids: Path
) -> None:
    store.queues.create("q")
    task_id = _hold(store, tmp_path, pids)
    agent = agents.start("-q", "q", env=SHORT_LEASE)
    pid = _pid_of(pids, 1)
    agent.send_signal(signal.SIGSTOP)  # frozen: it can neither renew nor stop its task
    try:
        _wait_gone(pid)  # the watchdog's doing: the agent is still frozen
        assert agent.poll() is None
        deadline = time.monotonic() + DEADLINE_SECONDS
        while store.tasks.get(task_id).attempt == 1 and (
            store.tasks.get(task_id).status is TaskStatus.RUNNING
        ):
            assert time.monotonic() < deadline, "the frozen agent's lease never expired"
            store.leases.reap()
            time.sleep(0.2)
    finally:
        agent.send_signal(signal.SIGCONT)
    # Thawed, the agent gives the attempt up: its own clock says the lease ran out, or its
    # next heartbeat says the attempt is no longer its own.
    assert agent.poll() is None  # the agent itself goes on serving
    said = (
        f"task {task_id} is no longer this agent's",
        f"task {task_id} stopped: its lease could not be renewed",
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not any(words in (out := agents.output(0)) for words in said):
        assert time.monotonic() < deadline, out
        time.sleep(0.1)


@pytest.fixture
def client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    sdk = docker.from_env(version="auto")
    yield sdk
    sdk.close()


def test_an_agent_removes_the_containers_of_this_hosts_dead_agents(
    cli: Cli, store: Store, client: docker.DockerClient
) -> None:
    store.queues.create("q")
    # This test's own pid with another start time: a dead agent whose pid was reused.
    dead = {
        AGENT_LABEL: "host:dead",
        HOST_LABEL: socket.gethostname(),
        PID_LABEL: str(os.getpid()),
        STARTED_LABEL: "1.0",
    }
    alive = owner_labels("host:alive")  # this test process, as it is
    elsewhere = {**dead, HOST_LABEL: "another-machine"}
    started = {
        name: client.containers.run(
            DOCKER_TEST_IMAGE, ["sleep", "300"], labels=labels, detach=True, init=True
        )
        for name, labels in (("dead", dead), ("alive", alive), ("elsewhere", elsewhere))
    }
    try:
        result = cli.run(
            "agent", "-q", "q", "--docker", DOCKER_TEST_IMAGE, "--idle-exit", "0.5", check=False
        )
        assert result.returncode == 0, result.stderr
        remaining = {c.id for c in client.containers.list(all=True)}
        assert started["dead"].id not in remaining
        assert {started["alive"].id, started["elsewhere"].id} <= remaining
        assert f"removed container {started['dead'].id[:12]} of agent host:dead" in result.stderr
    finally:
        for container in started.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
