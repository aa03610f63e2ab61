"""Gang tasks on ``clearq agent --docker IMAGE``: each rank in a container on a real engine.

Two real Docker agents run a 2-rank gang whose code rendezvouses over a plain socket at
the address its agents gave it (rank 0 listens on ``MASTER_PORT``, rank 1 connects to
``MASTER_ADDR:MASTER_PORT``; each sends its ``RANK``), so both containers must share the
host's network. A rank whose container fails stops the other rank's container. An agent
whose containers cannot share the host's network takes no ranks, and says why.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from clearq.envs.docker_engine import DockerEngine
from clearq.models import EnvSpec, Script, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli
from tests.conftest import on_one_database
from tests.integration.conftest import DOCKER_TEST_IMAGE
from tests.integration.conftest import docker_engine as docker_engine  # the shared fixture

SERVE_WAIT_SECONDS = 600
"""The first run builds the container venv: minutes on a loaded machine."""

# FAIL_RANK names a rank (not 0) that exits 3 once it reached rank 0, without sending its
# rank; WAIT is how long rank 0 waits for the others (long: only a stop ends it early).
RENDEZVOUS = """
import os, socket, sys, time
rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
inside = os.path.exists("/.dockerenv")
print(f"rank {rank} of {size} at {addr}:{port}, in a container: {inside}", flush=True)
seen = []
if rank == 0:
    server = socket.create_server(("", port))
    server.settimeout(float(os.environ.get("WAIT", "120")))
    print("listening", flush=True)
    while len(seen) < size - 1:
        conn, _ = server.accept()
        with conn:
            line = conn.makefile().readline()
            if line:  # a rank that hung up without its rank is not counted
                seen.append(int(line))
                conn.sendall(b"0\\n")
else:
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        if os.environ.get("FAIL_RANK") == str(rank):  # rank 0 runs by now: fail under it
            print("failing on purpose", flush=True)
            sys.exit(3)
        conn.sendall(f"{rank}\\n".encode())
        seen.append(int(conn.makefile().readline()))
print(f"saw ranks {sorted(seen)}", flush=True)
"""

REQUIREMENTS = EnvSpec(requirements=("six==1.16.0",))
"""test_agent_docker's: the same venv, where the env cache is shared."""


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLEARQ_HOME for the module: the container venv is built once, then reused."""
    return tmp_path_factory.mktemp("docker-gang-home")


@pytest.fixture
def home_cli(store_url: str, shared_home: Path) -> Cli:
    return Cli.for_database(store_url, shared_home)


@pytest.fixture
def containers(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    client = docker.from_env(version="auto")
    yield client
    client.close()


@pytest.fixture
def agents(home_cli: Cli, tmp_path: Path) -> Iterator[_DockerAgents]:
    started = _DockerAgents(home_cli, tmp_path)
    yield started
    started.stop_all()


class _DockerAgents:
    """Docker agents started by a test, killed at its end."""

    def __init__(self, cli: Cli, logs: Path) -> None:
        self._cli = cli
        self._logs = logs
        self.started: list[forkserver.Process] = []

    def start(self, *args: str) -> forkserver.Process:
        with (self._logs / f"agent-{len(self.started)}.log").open("wb") as out:
            proc = forkserver.spawn(
                [str(CLEARQ), "agent", "-q", "q", "--docker", DOCKER_TEST_IMAGE, *args],
                env=self._cli.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(proc)
        return proc

    def output(self, index: int) -> str:
        return (self._logs / f"agent-{index}.log").read_text()

    def wait(self, index: int) -> int:
        return self.started[index].wait(timeout=SERVE_WAIT_SECONDS)

    def stop_all(self) -> None:
        for proc in self.started:
            proc.kill()
            proc.wait()


def _gang_task(store: Store, environment: dict[str, str] | None = None) -> uuid.UUID:
    spec = TaskSpec(
        project="docker-gangs",
        name="rendezvous x2",
        script=Script(source=RENDEZVOUS, entry_point="rendezvous.py"),
        env=REQUIREMENTS,
        environment=environment or {},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q", nodes=2)
    return task_id


def _logs(store: Store, task_id: uuid.UUID) -> str:
    return "".join(line.text for line in store.outputs.logs(task_id))


def _left_behind(client: docker.DockerClient, task_id: uuid.UUID) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"clearq.task={task_id}"})
    return [c.id for c in found]


# The host's network, as a gang's ranks need (it also reaches this machine's package
# index for the venv build).
HOST_NETWORK = ("--docker-network", "host")


@on_one_database("sqlite")
def test_two_docker_agents_run_a_gang_whose_ranks_reach_each_other(
    store: Store, agents: _DockerAgents, containers: docker.DockerClient
) -> None:
    store.queues.create("q")
    task_id = _gang_task(store)
    for i in range(2):
        agents.start("--once", "--name", f"d{i}", *HOST_NETWORK)
    for i in range(2):
        assert agents.wait(i) == OnceExit.COMPLETED, agents.output(i)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    log = _logs(store, task_id)
    master = re.search(r"\[rank 0\] rank 0 of 2 at (\S+), in a container: True\n", log)
    assert master is not None, log
    assert f"[rank 1] rank 1 of 2 at {master.group(1)}, in a container: True\n" in log
    assert "[rank 0] saw ranks [1]\n" in log
    assert "[rank 1] saw ranks [0]\n" in log
    members = store.gangs.members(task_id)
    assert {state for _, _, state in members} == {"completed"}
    assert _left_behind(containers, task_id) == []


@on_one_database("sqlite")
def test_a_rank_whose_container_fails_stops_the_gang(
    store: Store, agents: _DockerAgents, containers: docker.DockerClient
) -> None:
    store.queues.create("q")
    # Rank 1 reaches rank 0's running container, then fails; rank 0 would wait ten
    # minutes more: only the gang's stop ends its container within the test's wait.
    task_id = _gang_task(store, {"FAIL_RANK": "1", "WAIT": "600"})
    for i in range(2):
        agents.start("--once", "--name", f"d{i}", "--stop-grace", "2", *HOST_NETWORK)
    ends = sorted(agents.wait(i) for i in range(2))
    outputs = agents.output(0) + agents.output(1)
    assert ends == [OnceExit.FAILED, OnceExit.LOST], outputs
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.status_reason.startswith("rank 1 of 2: "), task.status_reason
    assert "exited with code 3" in task.status_reason
    log = _logs(store, task_id)
    # Rank 1 says so only once connected to rank 0's running container. (Rank 0's own
    # lines may not be kept: its writes end with the attempt's fence when rank 1 fails.)
    assert "[rank 1] failing on purpose\n" in log
    assert "saw ranks" not in log
    assert _left_behind(containers, task_id) == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_docker_agent_off_the_host_network_takes_no_ranks_and_says_why(
    store: Store, agents: _DockerAgents
) -> None:
    store.queues.create("q")
    task_id = _gang_task(store)
    for i in range(2):
        agents.start("--idle-exit", "3", "--name", f"d{i}")
    for i in range(2):
        assert agents.wait(i) == 0, agents.output(i)
        said = agents.output(i)
        assert "Docker mode in the bridge network takes no ranks of multi-node tasks" in said
        assert "--docker-network host or --allow-host-network" in said
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
    assert store.gangs.members(task_id) == []


@on_one_database("postgres")
def test_task_run_in_docker_off_the_host_network_refuses_a_gang_task(
    store: Store, home_cli: Cli
) -> None:
    store.queues.create("q")
    task_id = _gang_task(store)
    done = home_cli.run("task", "run", str(task_id), "--docker", DOCKER_TEST_IMAGE, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"task {task_id} runs on 2 nodes at once" in said
    assert "--docker-network host" in said
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
