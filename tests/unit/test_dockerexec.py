"""The agent's Docker mode over a fake container engine: what it starts, how runs end."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearq.envs.docker import DockerConfig, DockerRunner
from clearq.envs.docker_spec import ContainerSpec, Mount
from clearq.errors import ImageNotFound
from clearq.models import (
    Container,
    EnvSpec,
    Fence,
    GangRank,
    Script,
    Task,
    TaskSpec,
    TaskStatus,
)
from clearq.runtime.channel import CONTAINER_SOCKET, AttemptChannel
from clearq.runtime.dockerexec import DockerExecution, gang_refusal
from clearq.runtime.executor import Control, ExecutorConfig, ReadyTask, Step, StepFailed
from clearq.testing import MemoryStore

EXIT_SETUP_SCRIPT = 251


class FakeHandle:
    """A container that writes ``output`` and exits with ``code``, or runs until stopped."""

    def __init__(self, output: list[tuple[str, bytes]], code: int | None) -> None:
        self.id = "c0ffee" * 8
        self._output = output
        self._code = code
        self._ended = threading.Event()
        if code is not None:
            self._ended.set()
        self.stops: list[float] = []
        self.removed = False

    def output(self) -> Iterator[tuple[str, bytes]]:
        yield from self._output
        self._ended.wait(5)

    def wait(self, timeout: float | None = None) -> int | None:
        return self._code if self._ended.wait(timeout) else None

    def stop(self, grace: float) -> None:
        self.stops.append(grace)
        if self._code is None:
            self._code = 143
        self._ended.set()

    def remove(self) -> None:
        self.removed = True
        self._ended.set()


class FakeEngine:
    """Starts the probe (python3 is fine), an env's build when needed, then the task's."""

    def __init__(self, code: int | None, *lines: tuple[str, str], build_code: int = 0) -> None:
        self._code = code
        self._lines = lines
        self._build_code = build_code
        self.spec: ContainerSpec | None = None
        self.builds: list[ContainerSpec] = []
        self.plan: dict[str, Any] = {}
        self.requirements = ""
        self.handle: FakeHandle | None = None

    def image_id(self, image: str, *, pull: bool) -> str:
        if image == "missing":
            raise ImageNotFound(f"image {image!r} is not on this machine and could not be pulled")
        return "sha256:" + "a" * 64

    def start(self, spec: ContainerSpec) -> FakeHandle:
        if spec.labels.get("clearq") == "probe":
            return FakeHandle([], 0)
        if spec.labels.get("clearq") == "env-build":
            self.builds.append(spec)
            if self._build_code == 0:
                build = next(m.source for m in spec.mounts if not m.read_only)
                (build / ".clearq-ready").write_text("built")
            return FakeHandle([("stdout", b"Collecting six\n")], self._build_code)
        self.spec = spec
        control = next(m.source for m in spec.mounts if m.target == "/clearq/control")
        self.plan = json.loads((control / "plan.json").read_text())
        self.requirements = (control / "requirements.txt").read_text()
        key = str(self.plan["build_plan"]["key"])
        output = [(s, t.replace("KEY", key).encode()) for s, t in self._lines]
        self.handle = FakeHandle(output, self._code)
        return self.handle


class FakeSink:
    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.pieces.append((stream, text))

    def agent(self, line: str) -> None:
        self.pieces.append(("agent", line))


def _claimed() -> tuple[MemoryStore, Fence]:
    """An in-memory store whose task runs its second attempt on worker ``box:a``."""
    store = MemoryStore()
    store.queues.create("q")
    task_id = store.tasks.create(TaskSpec(project="p", name="t")).id
    store.queues.enqueue(task_id, "q")
    [first] = store.claimer("box:a", ["q"]).claim()
    store.leases.requeue(first.fence, reason="agent restarted")
    [claim] = store.claimer("box:a", ["q"]).claim()
    assert claim.attempt == 2
    return store, claim.fence


def _ready(
    tmp_path: Path,
    fence: Fence,
    container: Container | None = None,
    gang: GangRank | None = None,
) -> ReadyTask:
    code = tmp_path / "code"
    (code / "src").mkdir(parents=True, exist_ok=True)
    task = Task.model_construct(
        script=Script(entry_point="src/train.py", working_dir="src", arguments=("--lr", "1")),
        env=EnvSpec(requirements=("six==1.16.0",)),
        container=container or Container(),
    )
    channel = AttemptChannel(MemoryStore(), fence, tmp_path / "home" / "runs" / "attempt")  # type: ignore[arg-type]
    return ReadyTask(task, fence, code, code / "src", ("1",), channel, gang)


def _execution(tmp_path: Path, engine: FakeEngine, store: MemoryStore) -> DockerExecution:
    docker = DockerConfig(envs_dir=tmp_path / "docker-envs", default_image="img")
    config = ExecutorConfig(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'db' / 'clearq.db'}",
        worker="box:a",
        stop_grace=2.0,
    )
    runner = DockerRunner(engine, docker)
    return DockerExecution(store, runner, config, artifacts_dir=tmp_path / "artifacts")


def _run(tmp_path: Path, engine: FakeEngine, control: Control | None = None) -> Any:
    (store, fence), sink = _claimed(), FakeSink()
    execution = _execution(tmp_path, engine, store)
    outcome = execution.run(_ready(tmp_path, fence), control or Control(), sink)  # type: ignore[arg-type]
    return outcome, _Ran(store, fence), sink


class _Ran:
    """The store after a run, and what the run recorded in its task's ``runtime``."""

    def __init__(self, store: MemoryStore, fence: Fence) -> None:
        self.fence = fence
        self.runtime = store.tasks.get(fence.task_id).runtime


def test_the_container_runs_the_entry_point_with_the_tasks_variables(tmp_path: Path) -> None:
    engine = FakeEngine(0, ("stdout", "hello\n"))
    outcome, store, sink = _run(tmp_path, engine)
    fence = store.fence
    assert (outcome.status, outcome.exit_code) == (TaskStatus.COMPLETED, 0)
    assert engine.plan["command"] == ["python3", "/clearq/workspace/src/train.py", "--lr", "1"]
    assert engine.plan["working_dir"] == "/clearq/workspace/src"
    # PYTHONPATH's first entries: the repository's root and working folder, as in a checkout
    assert engine.plan["pythonpath"][-2:] == ["/clearq/workspace", "/clearq/workspace/src"]
    assert "six==1.16.0\n" in engine.requirements
    assert "sqlalchemy==" in engine.requirements  # the SDK's, at the agent's versions
    spec = engine.spec
    assert spec is not None
    assert spec.gpus == ("1",)
    assert spec.name == f"clearq-{fence.task_id}-2"
    assert spec.labels["clearq.task"] == str(fence.task_id)
    assert {k: spec.environment[k] for k in ("CLEARQ_TASK_ID", "CLEARQ_ATTEMPT")} == {
        "CLEARQ_TASK_ID": str(fence.task_id),
        "CLEARQ_ATTEMPT": "2",
    }
    assert spec.environment["CLEARQ_WORKER"] == "box:a"
    assert ("stdout", "hello\n") in sink.pieces
    assert ("stdout", "Collecting six\n") in sink.pieces  # the build's output, live
    assert store.runtime["env"]["hit"] is False
    assert store.runtime["env"]["key"] == engine.plan["build_plan"]["key"]
    assert store.runtime["docker"]["container_id"] == engine.handle.id
    assert engine.handle.removed


def test_every_container_carries_its_agents_labels(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    owner = {"clearq.agent": "box:a", "clearq.agent-pid": "7"}
    docker = DockerConfig(
        envs_dir=tmp_path / "docker-envs", default_image="img", owner_labels=owner
    )
    config = ExecutorConfig(home=tmp_path / "home", database_url="sqlite://", worker="box:a")
    store, fence = _claimed()
    execution = DockerExecution(store, DockerRunner(engine, docker), config)
    execution.run(_ready(tmp_path, fence), Control(), FakeSink())  # type: ignore[arg-type]
    assert engine.spec is not None
    for spec in (engine.spec, *engine.builds):
        assert owner.items() <= spec.labels.items()
    assert engine.spec.labels["clearq"] == "task"


def test_the_container_gets_its_channel_and_never_the_database(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    _run(tmp_path, engine)
    spec = engine.spec
    assert spec is not None
    assert spec.environment["CLEARQ_CHANNEL"] == CONTAINER_SOCKET
    assert spec.environment["CLEARQ_CHANNEL_TOKEN"]
    assert "CLEARQ_DATABASE_URL" not in spec.environment
    assert "CLEARQ_HOME" not in spec.environment
    socket = tmp_path / "home" / "runs" / "attempt" / "channel.sock"
    assert Mount(socket, CONTAINER_SOCKET, read_only=False) in spec.mounts
    database_folder, home = tmp_path / "db", tmp_path / "home"
    assert not any(m.source.is_relative_to(database_folder) for m in spec.mounts)
    assert not any(m.source in (home, home / "runs") for m in spec.mounts)


def test_only_the_tasks_own_artifacts_folder_is_mounted(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    _, ran, _ = _run(tmp_path, engine)
    assert engine.spec is not None
    artifacts = (tmp_path / "artifacts").resolve()
    own = artifacts / str(ran.fence.task_id)
    assert Mount(own, str(own), read_only=False) in engine.spec.mounts
    assert not any(m.source == artifacts for m in engine.spec.mounts)


def test_the_env_cache_is_read_only_for_the_task_and_built_beside_it(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    _run(tmp_path, engine)
    [build] = engine.builds
    envs = (tmp_path / "docker-envs").resolve()
    assert Mount(envs, "/clearq/envs", read_only=True) in build.mounts
    [writable] = [m for m in build.mounts if not m.read_only]
    assert writable.source.parent == envs / ".builds"
    assert writable.target == f"/clearq/envs/.builds/{writable.source.name}"
    assert engine.spec is not None
    assert Mount(envs, "/clearq/envs", read_only=True) in engine.spec.mounts
    assert not any(m.source.is_relative_to(envs) and not m.read_only for m in engine.spec.mounts)
    key = engine.plan["build_plan"]["key"]
    assert engine.plan["venv"] == f"/clearq/envs/{key}"
    again = FakeEngine(0)
    _, store, _ = _run(tmp_path, again)
    assert again.builds == []
    assert store.runtime["env"]["hit"] is True


def test_a_failed_env_build_fails_the_environment_step_and_starts_no_task(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(0, build_code=252)
    with pytest.raises(StepFailed) as failed:
        _run(tmp_path, engine)
    assert failed.value.step is Step.ENVIRONMENT
    assert engine.spec is None
    assert list((tmp_path / "docker-envs" / ".builds").iterdir()) == []


def test_a_failed_bootstrap_step_fails_the_task_naming_it(tmp_path: Path) -> None:
    said = ("stderr", "clearq-docker: the setup script exited with code 3\n")
    engine = FakeEngine(EXIT_SETUP_SCRIPT, said)
    with pytest.raises(StepFailed) as failed:
        _run(tmp_path, engine)
    assert failed.value.step is Step.SETUP
    assert str(failed.value).startswith("setup script failed: the setup script exited with code 3")
    assert engine.handle is not None
    assert engine.handle.removed


def test_the_tasks_own_failure_keeps_its_exit_code(tmp_path: Path) -> None:
    outcome, _, _ = _run(tmp_path, FakeEngine(3, ("stderr", "Traceback ...\n")))
    assert (outcome.status, outcome.exit_code, outcome.reason) == (
        TaskStatus.FAILED,
        3,
        "exited with code 3",
    )


def test_a_lost_lease_stops_the_container_at_once(tmp_path: Path) -> None:
    control = Control()
    control.lose()
    engine = FakeEngine(None)
    outcome, _, _ = _run(tmp_path, engine, control)
    assert (outcome.status, outcome.reason, outcome.requeue) == (None, "lease lost", False)
    assert engine.handle is not None
    assert (engine.handle.stops, engine.handle.removed) == ([0], True)


def test_the_agent_shutting_down_stops_and_requeues(tmp_path: Path) -> None:
    control = Control()
    engine = FakeEngine(None)
    threading.Timer(0.3, control.requeue, args=("the agent is shutting down",)).start()
    outcome, _, _ = _run(tmp_path, engine, control)
    assert (outcome.status, outcome.requeue) == (None, True)
    assert outcome.reason == "the agent is shutting down"
    assert engine.handle is not None
    assert (engine.handle.stops, engine.handle.removed) == ([2.0], True)


def test_a_stop_request_stops_the_container(tmp_path: Path) -> None:
    control = Control()
    control.stop("stop requested")
    engine = FakeEngine(None)
    outcome, _, _ = _run(tmp_path, engine, control)
    assert (outcome.status, outcome.exit_code) == (TaskStatus.STOPPED, 143)
    assert outcome.reason == "stop requested"


def test_a_missing_image_fails_the_container_step(tmp_path: Path) -> None:
    (store, fence), engine = _claimed(), FakeEngine(0)
    execution = _execution(tmp_path, engine, store)
    ready = _ready(tmp_path, fence, Container(image="missing"))
    with pytest.raises(StepFailed) as failed:
        execution.run(ready, Control(), FakeSink())  # type: ignore[arg-type]
    assert failed.value.step is Step.CONTAINER
    assert "image 'missing' is not on this machine" in str(failed.value)
    assert engine.spec is None


def test_nothing_else_of_clearq_home_is_mounted(tmp_path: Path) -> None:
    home = (tmp_path / "home").resolve()
    (store, fence), engine = _claimed(), FakeEngine(0)
    docker = DockerConfig(envs_dir=home / "docker-envs", default_image="img")
    config = ExecutorConfig(
        home=home, database_url="postgresql://u@db/clearq", worker="box:a", stop_grace=2.0
    )
    execution = DockerExecution(
        store, DockerRunner(engine, docker), config, artifacts_dir=home / "artifacts"
    )
    ready = _ready(home / "runs" / f"{fence.task_id}-2", fence)
    execution.run(ready, Control(), FakeSink())  # type: ignore[arg-type]
    assert engine.spec is not None
    inside = {m.source: m.read_only for m in engine.spec.mounts if m.source.is_relative_to(home)}
    assert inside == {
        ready.code_dir.resolve(): False,
        home / "docker-envs": True,
        home / "artifacts" / str(fence.task_id): False,
        ready.channel.path: False,  # the attempt's channel: its socket alone
    }


RANK_1 = GangRank(rank=1, size=2, master_addr="10.0.0.7", master_port=29500)


def test_a_gang_rank_runs_in_the_hosts_network_with_its_rank_variables(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    store, fence = _claimed()
    execution = _execution(tmp_path, engine, store)
    ready = _ready(tmp_path, fence, gang=RANK_1)
    outcome = execution.run(ready, Control(), FakeSink())  # type: ignore[arg-type]
    assert outcome.status is TaskStatus.COMPLETED
    spec = engine.spec
    assert spec is not None
    assert spec.network_mode == "host"
    # Two ranks of one gang may run on one machine: each container has a name of its own.
    assert spec.name == f"clearq-{fence.task_id}-2-rank1"
    assert spec.labels["clearq.rank"] == "1"
    wanted = {
        "MASTER_ADDR": "10.0.0.7",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "NODE_RANK": "1",
        "LOCAL_RANK": "0",
        "PET_NNODES": "2",
        "PET_NODE_RANK": "1",
        "PET_MASTER_ADDR": "10.0.0.7",
        "PET_MASTER_PORT": "29500",
        "PET_NPROC_PER_NODE": "1",  # the one GPU the agent gave this rank
    }
    assert {k: spec.environment[k] for k in wanted} == wanted
    assert all(b.network_mode == "bridge" for b in engine.builds)  # the build: the default


def test_an_ordinary_task_keeps_the_agents_network_and_no_rank_variables(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    _run(tmp_path, engine)
    assert engine.spec is not None
    assert engine.spec.network_mode == "bridge"
    assert "RANK" not in engine.spec.environment
    assert "clearq.rank" not in engine.spec.labels


def test_a_gang_rank_asking_for_another_network_fails_saying_why(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    store, fence = _claimed()
    execution = _execution(tmp_path, engine, store)
    ready = _ready(tmp_path, fence, Container(arguments=("--network", "bridge")), gang=RANK_1)
    with pytest.raises(StepFailed) as failed:
        execution.run(ready, Control(), FakeSink())  # type: ignore[arg-type]
    assert failed.value.step is Step.CONTAINER
    assert not failed.value.infra
    message = str(failed.value)
    assert "--network bridge cannot be used for this task" in message
    assert "shares the host's network to reach its other ranks" in message
    assert engine.spec is None  # refused before any container started


def test_a_gang_rank_may_name_the_hosts_network_itself(tmp_path: Path) -> None:
    engine = FakeEngine(0)
    store, fence = _claimed()
    execution = _execution(tmp_path, engine, store)  # the agent allows no --network host
    ready = _ready(tmp_path, fence, Container(arguments=("--network", "host")), gang=RANK_1)
    outcome = execution.run(ready, Control(), FakeSink())  # type: ignore[arg-type]
    assert outcome.status is TaskStatus.COMPLETED
    assert engine.spec is not None
    assert engine.spec.network_mode == "host"


@pytest.mark.parametrize(
    ("network", "allow", "refused"),
    [
        (None, False, True),
        ("bridge", False, True),
        ("mynet", False, True),
        ("host", False, False),
        (None, True, False),
        ("bridge", True, False),
    ],
)
def test_docker_mode_takes_gang_ranks_only_where_the_host_network_is_allowed(
    network: str | None, allow: bool, refused: bool
) -> None:
    why = gang_refusal(network, allow_host_network=allow)
    assert (why is not None) == refused
    if why is not None:
        assert f"in the {network or 'bridge'} network takes no ranks" in why
        assert "--docker-network host or --allow-host-network" in why
