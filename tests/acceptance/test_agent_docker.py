"""``clearq agent --docker IMAGE`` as a user runs it: tasks in containers on a real engine.

A real agent subprocess serves a real store (SQLite and PostgreSQL); each task's code is
rebuilt on the host and run in a container from the locally built test image (see
``tests/integration/conftest.py``: without an engine or the image these tests skip, and
fail under ``CLEARQ_REQUIRE_DOCKER=1``). Every task here asks for the same requirement,
and the tests share one env cache, so the container venv is built once per session.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from clearq.envs.docker_engine import DockerEngine
from clearq.models import Container, EnvSpec, Script, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli
from tests.acceptance.test_agent import WAIT_SECONDS, logs_of, wait_for, wait_for_log
from tests.conftest import on_one_database
from tests.gitrepo import published
from tests.integration.conftest import DOCKER_TEST_IMAGE
from tests.integration.conftest import docker_engine as docker_engine  # the shared fixture

TRAIN = """
import os, sys, time
import six
from clearq import Task

task = Task.init()
params = task.connect({"lr": 0.01, "sleep": 0.0})
inside = os.path.exists("/.dockerenv") and os.getcwd().startswith("/clearq/workspace")
print(f"lr={params['lr']} six={six.__version__} in a container: {inside}", flush=True)
print(f"python {sys.executable}", flush=True)
task.get_logger().report_scalar("loss", "train", value=params["lr"] * 2, iteration=1)
task.flush()
time.sleep(params["sleep"])
print("train ends", flush=True)
"""

REQUIREMENTS = EnvSpec(requirements=("six==1.16.0",))
SERVE_WAIT_SECONDS = 600
"""An agent's first run builds the container venv: minutes on a loaded machine, not 10 s."""


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare origin holding src/train.py; returns (origin, commit)."""
    repository = published(tmp_path, {"src/train.py": TRAIN}, message="train")
    return repository.origin, repository.commit


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLEARQ_HOME for the module: the container venv is built once, then reused."""
    return tmp_path_factory.mktemp("docker-home")


@pytest.fixture
def home_cli(store_url: str, shared_home: Path) -> Cli:
    """The command on this test's database, with the shared home."""
    return Cli.for_database(store_url, shared_home)


@pytest.fixture
def containers(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    """A plain SDK client, to see which containers the agent left behind."""
    client = docker.from_env(version="auto")
    yield client
    client.close()


def _task(
    store: Store,
    repo: tuple[Path, str],
    name: str,
    *,
    parameters: dict[str, str] | None = None,
    container: Container | None = None,
) -> uuid.UUID:
    origin, commit = repo
    script = Script(
        repository=str(origin), commit=commit, entry_point="src/train.py", working_dir="src"
    )
    spec = TaskSpec(
        project="docker",
        name=name,
        script=script,
        env=REQUIREMENTS,
        container=container or Container(),
        parameters=parameters or {},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    return task_id


def _agent(cli: Cli, log: Path, *args: str) -> forkserver.Process:
    # The host's network, for the venv build's package index on this machine; the task's
    # SDK needs none of it: it reports through its channel (the one socket mounted).
    network = ("--docker-network", "host")
    with log.open("wb") as out:
        return forkserver.spawn(
            [str(CLEARQ), "agent", "-q", "q", "--docker", DOCKER_TEST_IMAGE, *network, *args],
            env=cli.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _serve_once(cli: Cli, log: Path, code: OnceExit = OnceExit.COMPLETED) -> str:
    """Run ``clearq agent --once`` to its end; it must exit with ``code``."""
    agent = _agent(cli, log, "--once")
    try:
        ended = agent.wait(timeout=SERVE_WAIT_SECONDS)
    finally:
        agent.kill()
        agent.wait()
    output = log.read_text()
    assert ended == code, output
    return output


def _left_behind(client: docker.DockerClient, task_id: uuid.UUID) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"clearq.task={task_id}"})
    return [c.id for c in found]


@on_one_database("postgres")
def test_a_task_runs_in_its_container_with_its_parameters_and_requirements(
    home_cli: Cli,
    store: Store,
    repo: tuple[Path, str],
    containers: docker.DockerClient,
    tmp_path: Path,
) -> None:
    store.queues.create("q")
    task_id = _task(store, repo, "train", parameters={"General/lr": "0.5"})
    output = _serve_once(home_cli, tmp_path / "agent.log")
    assert f"task {task_id} completed" in output
    task = store.tasks.get(task_id)
    assert (task.status, task.exit_code) == (TaskStatus.COMPLETED, 0)
    log = logs_of(store, task_id)
    assert "lr=0.5 six=1.16.0 in a container: True" in log
    key = task.runtime["env"]["key"]
    assert f"python /clearq/envs/{key}/bin/python" in log
    assert [(s.title, s.series, s.last) for s in store.outputs.summary(task_id)] == [
        ("loss", "train", 1.0)
    ]
    assert task.runtime["docker"]["image"] == DOCKER_TEST_IMAGE
    assert task.runtime["env"]["hit"] in (True, False)  # the bootstrap's own word
    assert task.runtime["worker"] == task.worker
    assert _left_behind(containers, task_id) == []


@on_one_database("sqlite")
def test_abort_stops_the_container(
    home_cli: Cli,
    store: Store,
    repo: tuple[Path, str],
    containers: docker.DockerClient,
    tmp_path: Path,
) -> None:
    store.queues.create("q")
    task_id = _task(store, repo, "long", parameters={"General/sleep": "120"})
    agent = _agent(home_cli, tmp_path / "agent.log", "--idle-exit", "2", "--stop-grace", "2")
    try:
        wait_for_log(store, task_id, "in a container: True")
        assert _left_behind(containers, task_id) != []
        assert "stop requested" in home_cli.run("task", "abort", str(task_id)).stdout
        wait_for(store, task_id, [TaskStatus.STOPPED])
        assert agent.wait(timeout=WAIT_SECONDS) == 0
    finally:
        agent.kill()
        agent.wait()
    assert store.tasks.get(task_id).status_reason == "stop requested"
    assert "train ends" not in logs_of(store, task_id)
    assert _left_behind(containers, task_id) == []


@on_one_database("sqlite")
def test_a_failing_setup_script_fails_the_task_naming_the_step(
    home_cli: Cli,
    store: Store,
    repo: tuple[Path, str],
    containers: docker.DockerClient,
    tmp_path: Path,
) -> None:
    store.queues.create("q")
    broken = Container(setup_script="echo preparing the box\nexit 3\n")
    task_id = _task(store, repo, "broken", container=broken)
    output = _serve_once(home_cli, tmp_path / "agent.log", OnceExit.FAILED)
    assert f"task {task_id} failed" in output
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.status_reason.startswith("setup script failed: ")
    assert "exited with code 3" in task.status_reason
    assert "preparing the box" in logs_of(store, task_id)
    assert _left_behind(containers, task_id) == []


@on_one_database("postgres")
def test_a_missing_image_fails_the_task_and_the_agent_goes_on(
    home_cli: Cli, store: Store, repo: tuple[Path, str], docker_engine: DockerEngine, tmp_path: Path
) -> None:
    store.queues.create("q")
    missing = Container(image="clearq-test-no-such-image:none")
    task_id = _task(store, repo, "nowhere", container=missing)
    _serve_once(home_cli, tmp_path / "agent.log", OnceExit.FAILED)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.status_reason.startswith("container failed: ")
    assert "clearq-test-no-such-image:none" in task.status_reason


ATTACK = """
import os
root, victim = os.environ["ARTIFACTS"], os.environ["VICTIM"]
try:
    with open(os.path.join(root, victim, "model.txt"), "w") as f:
        f.write("overwritten")
    print("wrote the victim's artifact")
except OSError as e:
    print("refused:", e.strerror)
with open(os.path.join(root, os.environ["CLEARQ_TASK_ID"], "mine.txt"), "w") as f:
    f.write("mine")
"""


@on_one_database("postgres")
def test_a_container_writes_its_own_artifacts_folder_and_no_other(
    home_cli: Cli, store: Store, containers: docker.DockerClient, tmp_path: Path
) -> None:
    store.queues.create("q")
    artifacts = Path(home_cli.env["CLEARQ_HOME"]) / "artifacts"
    victim = artifacts / str(uuid.uuid4())
    victim.mkdir(parents=True)
    (victim / "model.txt").write_text("the victim's model")
    arguments = ("-e", f"ARTIFACTS={artifacts.resolve()}", "-e", f"VICTIM={victim.name}")
    spec = TaskSpec(
        project="docker",
        name="attack",
        script=Script(source=ATTACK, entry_point="attack.py"),
        env=REQUIREMENTS,
        container=Container(arguments=arguments),
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    _serve_once(home_cli, tmp_path / "agent.log")
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED, logs_of(store, task_id)
    assert "refused:" in logs_of(store, task_id)
    assert (victim / "model.txt").read_text() == "the victim's model"
    assert (artifacts / str(task_id) / "mine.txt").read_text() == "mine"


@on_one_database("postgres")
def test_no_engine_fails_the_agent_at_start(home_cli: Cli, tmp_path: Path) -> None:
    gone = {"DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}
    result = home_cli.run("agent", "-q", "q", "--docker", "x", "--once", check=False, env=gone)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Docker engine answers")
    assert "Traceback" not in result.stderr


@on_one_database("sqlite")
def test_a_container_task_imports_the_repository_root_working_folder_and_its_own_path(
    home_cli: Cli, store: Store, tmp_path: Path
) -> None:
    from tests.acceptance.test_agent_imports import EXPECTED, FILES

    (tmp_path / "imports").mkdir()
    repository = published(tmp_path / "imports", FILES)
    script = Script(
        repository=str(repository.origin),
        commit=repository.commit,
        entry_point="tools/train.py",
        working_dir="configs",
    )
    spec = TaskSpec(
        project="docker",
        name="imports",
        script=script,
        env=REQUIREMENTS,
        environment={"PYTHONPATH": "../src"},
    )
    store.queues.create("q")
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    agent = _agent(home_cli, tmp_path / "agent.log", "--once")
    agent.wait(timeout=SERVE_WAIT_SECONDS)
    log = logs_of(store, task_id)
    assert EXPECTED in log, log
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED


PROBE = """
import json, os
from clearq import Task
from clearq.errors import ChannelRefused

task = Task.init()
database = task.connect({"database": ""})["database"]
seen = {k: os.environ.get(k) for k in ("CLEARQ_DATABASE_URL", "CLEARQ_HOME")}
print("env:", json.dumps(seen), "database file seen:", os.path.exists(database), flush=True)
try:
    Task.get_tasks()
    print("LISTED OTHER TASKS")
except ChannelRefused:
    print("no database here")
task.get_logger().report_scalar("probe", "ok", 1.0, 0)
"""


@on_one_database("sqlite")
def test_a_task_in_a_container_reaches_the_store_only_through_its_channel(
    home_cli: Cli, store: Store, store_url: str, tmp_path: Path
) -> None:
    store.queues.create("q")
    sqlite_file = store_url.removeprefix("sqlite:///") if store_url.startswith("sqlite") else ""
    spec = TaskSpec(
        project="docker",
        name="probe",
        script=Script(source=PROBE, entry_point="probe.py"),
        env=REQUIREMENTS,
        parameters={"General/database": sqlite_file},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    _serve_once(home_cli, tmp_path / "agent.log")
    log = logs_of(store, task_id)
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED, log
    seen = 'env: {"CLEARQ_DATABASE_URL": null, "CLEARQ_HOME": null} database file seen: False'
    assert seen in log
    assert "no database here" in log
    assert [(s.title, s.last) for s in store.outputs.summary(task_id)] == [("probe", 1.0)]
