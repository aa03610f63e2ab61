"""Docker mode end to end, on a real engine with the locally built test image."""

from __future__ import annotations

import dataclasses
import io
import socket
import sqlite3
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from clearq.config import Settings
from clearq.envs.docker import (
    DockerConfig,
    DockerRunner,
    DockerTask,
    database_mounts,
    describe_exit,
)
from clearq.envs.docker_bootstrap import EXIT_SETUP_SCRIPT
from clearq.envs.docker_engine import DockerEngine
from clearq.envs.docker_run import DockerRun
from clearq.errors import ContainerError, DockerArgsRefused, ImageNotFound
from clearq.models import Container, EnvSpec
from tests.integration.conftest import DOCKER_TEST_IMAGE

IMAGE = Container(image=DOCKER_TEST_IMAGE)
SIX = EnvSpec(requirements=("six==1.16.0",))

SCRIPT = """\
import os, sys
import six
print("six", six.__version__, "from", sys.executable)
print("task", os.environ["CLEARQ_TASK_ID"], "url", os.environ["CLEARQ_DATABASE_URL"])
print("from the task's -e:", os.environ["GREETING"])
print("setup wrote:", open("setup-ran.txt").read().strip())
print("cert", os.environ["PIP_CERT"], os.environ["SSL_CERT_FILE"])
print("a warning", file=sys.stderr)
sys.exit(3)
"""


@pytest.fixture(scope="module")
def docker_client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    """A plain SDK client, to check what the runner left on the engine."""
    client = docker.from_env(version="auto")
    yield client
    client.close()


def _runner(engine: DockerEngine, tmp_path: Path, **config: object) -> DockerRunner:
    base = DockerConfig.from_settings(Settings(home=tmp_path / "home"), with_clearq=False)
    return DockerRunner(engine, dataclasses.replace(base, **config))


def _workspace(tmp_path: Path, name: str = "ws", script: str = SCRIPT) -> Path:
    workspace = tmp_path / name
    workspace.mkdir()
    (workspace / "main.py").write_text(script)
    return workspace


def _collect(run: DockerRun) -> tuple[list[tuple[str, str]], int]:
    lines: list[tuple[str, str]] = []
    code = run.follow(lambda stream, text: lines.append((stream, text)))
    return lines, code


def test_a_task_runs_in_its_container_with_its_requirements(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    runner = _runner(docker_engine, tmp_path)
    task = DockerTask(
        workspace=_workspace(tmp_path),
        command=("python", "main.py"),
        container=Container(
            image=DOCKER_TEST_IMAGE,
            arguments=("-e", "GREETING=hello; $(rm -rf /)", "--shm-size=256m"),
            setup_script='echo "made by $0" > setup-ran.txt\n',
        ),
        env=SIX,
        environment={"CLEARQ_TASK_ID": "t-123", "CLEARQ_DATABASE_URL": "postgresql://x/y"},
    )
    with runner.start(task) as run:
        lines, code = _collect(run)
    out = "".join(text for stream, text in lines if stream == "stdout")
    assert code == 3
    assert f"six 1.16.0 from /clearq/envs/{run.env_key}/bin/python" in out
    assert "task t-123 url postgresql://x/y" in out
    assert "from the task's -e: hello; $(rm -rf /)" in out
    assert "setup wrote: made by /clearq/control/setup.sh" in out
    assert "cert /clearq/certs/ca-certificates.crt /clearq/certs/ca-certificates.crt" in out
    assert ("stderr", "a warning\n") in lines
    assert any(f"environment {run.env_key} built" in text for _, text in lines)
    assert (tmp_path / "home" / "docker-envs" / str(run.env_key) / "bin" / "python").exists()


def test_the_same_requirements_on_the_same_image_reuse_the_env(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    runner = _runner(docker_engine, tmp_path)
    script = "import six; print('six', six.__version__)\n"
    logs = []
    for name in ("first", "second"):
        task = DockerTask(
            workspace=_workspace(tmp_path, name, script),
            command=("python", "main.py"),
            container=IMAGE,
            env=EnvSpec(requirements=(" six==1.16.0", "")),
            environment={"CLEARQ_TASK_ID": name},
        )
        with runner.start(task) as run:
            lines, code = _collect(run)
        assert code == 0
        assert ("stdout", "six 1.16.0\n") in lines
        logs.append("".join(text for _, text in lines))
    assert f"environment {run.env_key} built" in logs[0]
    assert f"environment {run.env_key} reused" in logs[1]
    assert "Collecting six" not in logs[1]


def test_two_containers_needing_one_env_build_it_once(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    runner = _runner(docker_engine, tmp_path)
    script = "import six; print('six', six.__version__)\n"
    tasks = [
        DockerTask(
            workspace=_workspace(tmp_path, name, script),
            command=("python", "main.py"),
            container=IMAGE,
            env=SIX,
        )
        for name in ("a", "b")
    ]
    runs: list[DockerRun] = []
    results: list[tuple[list[tuple[str, str]], int]] = []

    def start_and_follow(task: DockerTask) -> None:
        run = runner.start(task)
        runs.append(run)
        results.append(_collect(run))

    try:
        threads = [threading.Thread(target=start_and_follow, args=(t,)) for t in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
    finally:
        for run in runs:
            run.close()
    assert [code for _, code in results] == [0, 0]
    logs = "".join(text for lines, _ in results for _, text in lines)
    assert logs.count(f"environment {runs[0].env_key} built") == 1
    assert logs.count(f"environment {runs[0].env_key} reused") == 1
    assert logs.count("six 1.16.0") == 2


def test_a_task_cannot_poison_the_env_later_containers_reuse(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    runner = _runner(docker_engine, tmp_path)
    poison = (
        "import os, six\n"
        "for path in (six.__file__, os.path.join(os.path.dirname(six.__file__), 'evil.pth')):\n"
        "    try:\n"
        "        open(path, 'w').write('raise SystemExit(\"poisoned\")\\n')\n"
        "        print('wrote', path)\n"
        "    except OSError as e:\n"
        "        print('refused', e.strerror)\n"
    )
    victim = "import six; print('six', six.__version__)\n"
    outputs = []
    for name, script in (("hostile", poison), ("victim", victim)):
        task = DockerTask(
            workspace=_workspace(tmp_path, name, script),
            command=("python", "main.py"),
            container=IMAGE,
            env=SIX,
        )
        with runner.start(task) as run:
            lines, code = _collect(run)
        outputs.append("".join(text for stream, text in lines if stream == "stdout"))
        assert code == 0, lines
    assert "wrote" not in outputs[0]
    assert outputs[0].count("refused Read-only file system") == 2
    assert outputs[1] == "six 1.16.0\n"


def test_a_failing_setup_script_is_reported_and_the_task_does_not_run(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    task = DockerTask(
        workspace=_workspace(tmp_path, script="print('ran')\n"),
        command=("python3", "main.py"),
        container=Container(image=DOCKER_TEST_IMAGE, setup_script="echo broken >&2\nexit 7\n"),
    )
    with _runner(docker_engine, tmp_path).start(task) as run:
        lines, code = _collect(run)
    assert code == EXIT_SETUP_SCRIPT
    assert describe_exit(code) == "the setup script failed"
    assert ("stdout", "ran\n") not in lines
    assert ("stderr", "clearq-docker: the setup script exited with code 7\n") in lines


def _loopback_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        try:
            connection, _ = server.accept()
        except OSError:  # the test closed the server: nobody dialled (as a test may expect)
            return
        with connection:
            connection.sendall(b"db says hi")

    threading.Thread(target=answer, daemon=True).start()
    return server, server.getsockname()[1]


def _dial_script(port: int) -> str:
    return (
        "import socket\n"
        "try:\n"
        f"    print(socket.create_connection(('127.0.0.1', {port}), timeout=5).recv(64).decode())\n"
        "except OSError as e:\n"
        "    print('unreachable', type(e).__name__)\n"
    )


def test_the_host_network_reaches_the_agents_localhost_when_the_operator_says_so(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    """``--docker-network host``: a database on 127.0.0.1 is reached at the agent's URL."""
    server, port = _loopback_server()
    with server:
        task = DockerTask(
            workspace=_workspace(tmp_path, script=_dial_script(port)),
            command=("python3", "main.py"),
            container=IMAGE,
        )
        with _runner(docker_engine, tmp_path, network_mode="host").start(task) as run:
            lines, code = _collect(run)
    assert (code, lines) == (0, [("stdout", "db says hi\n")])


def test_the_default_network_is_bridge_without_the_hosts_loopback(
    docker_engine: DockerEngine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    server, port = _loopback_server()
    with server:
        task = DockerTask(
            workspace=_workspace(tmp_path, script=_dial_script(port)),
            command=("python3", "main.py"),
            container=IMAGE,
        )
        with _runner(docker_engine, tmp_path).start(task) as run:
            lines, code = _collect(run)
            attrs = docker_client.containers.get(run.container_id).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "bridge"
    assert code == 0
    assert lines[0][1].startswith("unreachable")


def test_the_host_ipc_namespace_needs_the_operators_leave(
    docker_engine: DockerEngine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    task = DockerTask(
        workspace=_workspace(tmp_path, script="print('ran')\n"),
        command=("python3", "main.py"),
        container=Container(image=DOCKER_TEST_IMAGE, arguments=("--ipc", "host")),
        name=f"clearq-ipc-{uuid.uuid4().hex[:12]}",
    )
    with pytest.raises(DockerArgsRefused, match="--ipc host is not allowed on this agent"):
        _runner(docker_engine, tmp_path).start(task)
    assert docker_client.containers.list(all=True, filters={"name": task.name}) == []
    with _runner(docker_engine, tmp_path, allow_host_ipc=True).start(task) as run:
        attrs = docker_client.containers.get(run.container_id).attrs
        lines, code = _collect(run)
    assert attrs["HostConfig"]["IpcMode"] == "host"
    assert (code, lines) == (0, [("stdout", "ran\n")])


@pytest.mark.parametrize(
    ("script", "grace", "expected_code"),
    [
        ("", 10.0, 128 + 15),
        ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n", 1.0, 128 + 9),
    ],
    ids=["sigterm", "sigkill-after-grace"],
)
def test_stop_ends_the_task_and_close_removes_the_container(
    docker_engine: DockerEngine,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    script: str,
    grace: float,
    expected_code: int,
) -> None:
    script += "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    task = DockerTask(
        workspace=_workspace(tmp_path, script=script),
        command=("python3", "main.py"),
        container=IMAGE,
    )
    run = _runner(docker_engine, tmp_path).start(task)
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for _, text in run.logs():
            lines.append(text)
            if text == "started\n":
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), lines
        began = time.monotonic()
        run.stop(grace=grace)
        assert run.wait(timeout=30) == expected_code
        assert time.monotonic() - began < grace + 5
        reader.join(10)
        assert not reader.is_alive()
    finally:
        run.close()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(run.container_id)


def test_a_missing_image_says_so(docker_engine: DockerEngine, tmp_path: Path) -> None:
    task = DockerTask(
        workspace=_workspace(tmp_path),
        command=("python3", "main.py"),
        container=Container(image="clearq-no-such-image:never"),
    )
    with pytest.raises(ImageNotFound, match="'clearq-no-such-image:never' is not on this machine"):
        _runner(docker_engine, tmp_path).start(task)
    with pytest.raises(ImageNotFound, match="pulling is off"):
        _runner(docker_engine, tmp_path, pull=False).start(task)


@pytest.mark.parametrize(
    "arguments",
    [
        ("--privileged",),
        ("-v", "/etc:/host-etc"),
        ("--network=container:db",),
        ("--network", "host"),
        ("-e", "PATH"),
    ],
)
def test_unsafe_docker_arguments_are_refused_before_any_container_starts(
    docker_engine: DockerEngine,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    arguments: tuple[str, ...],
) -> None:
    task = DockerTask(
        workspace=_workspace(tmp_path),
        command=("python3", "main.py"),
        container=Container(image=DOCKER_TEST_IMAGE, arguments=arguments),
        name=f"clearq-refused-{tmp_path.name}",
    )
    with pytest.raises(DockerArgsRefused):
        _runner(docker_engine, tmp_path).start(task)
    assert docker_client.containers.list(all=True, filters={"name": task.name}) == []


def test_an_image_without_python_says_what_it_needs(
    docker_engine: DockerEngine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"empty"))
    docker_client.api.import_image_from_data(
        archive.getvalue(), repository="clearq-test-no-python", tag="latest"
    )
    task = DockerTask(
        workspace=_workspace(tmp_path),
        command=("python3", "main.py"),
        container=Container(image="clearq-test-no-python:latest"),
        name=f"clearq-no-python-{tmp_path.name}",
    )
    try:
        with pytest.raises(ContainerError, match="has no usable python3"):
            _runner(docker_engine, tmp_path).start(task)
        assert docker_client.containers.list(all=True, filters={"name": task.name}) == []
    finally:
        docker_client.images.remove("clearq-test-no-python:latest", force=True)


def test_the_task_writes_to_the_agents_sqlite_database(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'home' / 'clearq.db'}"
    (tmp_path / "home").mkdir()
    with sqlite3.connect(tmp_path / "home" / "clearq.db") as db:
        db.execute("create table t (x text)")
    db.close()
    script = (
        "import os, sqlite3\n"
        "path = os.environ['CLEARQ_DATABASE_URL'].removeprefix('sqlite:///')\n"
        "with sqlite3.connect(path) as db:\n"
        "    db.execute(\"insert into t values ('from the container')\")\n"
    )
    task = DockerTask(
        workspace=_workspace(tmp_path, script=script),
        command=("python3", "main.py"),
        container=IMAGE,
        environment={"CLEARQ_DATABASE_URL": url},
        mounts=database_mounts(url),
    )
    with _runner(docker_engine, tmp_path).start(task) as run:
        lines, code = _collect(run)
    assert code == 0, lines
    with sqlite3.connect(tmp_path / "home" / "clearq.db") as db:
        assert db.execute("select x from t").fetchall() == [("from the container",)]
    db.close()
