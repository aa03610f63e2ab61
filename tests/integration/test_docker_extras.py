"""Docker mode's slower steps: the agent's own clearq inside, and system packages."""

from __future__ import annotations

from pathlib import Path

from clearq.config import Settings
from clearq.envs.docker import DockerConfig, DockerRunner, DockerTask
from clearq.envs.docker_engine import DockerEngine
from clearq.models import Container
from tests.integration.conftest import DOCKER_TEST_IMAGE


def _run(runner: DockerRunner, task: DockerTask) -> tuple[str, int]:
    lines: list[str] = []
    with runner.start(task) as run:
        code = run.follow(lambda _stream, text: lines.append(text))
    return "".join(lines), code


def test_the_agents_own_clearq_is_importable_and_never_fetched_by_name(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    config = DockerConfig.from_settings(Settings(home=tmp_path / "home"))
    assert config.clearq_package is not None
    assert config.clearq_requirements
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "main.py").write_text(
        "import clearq, clearq.models\n"
        "print('clearq at', clearq.__file__)\n"
        "print('manager', clearq.models.EnvSpec().manager.value)\n"
    )
    task = DockerTask(
        workspace=tmp_path / "ws",
        command=("python", "main.py"),
        container=Container(image=DOCKER_TEST_IMAGE),
    )
    output, code = _run(DockerRunner(docker_engine, config), task)
    assert code == 0, output
    assert "clearq at /clearq/lib/clearq/__init__.py" in output
    assert "manager uv" in output
    assert "Collecting clearq" not in output


def test_system_packages_are_installed_with_apt(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    config = DockerConfig.from_settings(Settings(home=tmp_path / "home"), with_clearq=False)
    (tmp_path / "ws").mkdir()
    task = DockerTask(
        workspace=tmp_path / "ws",
        command=("jq", "--version"),
        container=Container(image=DOCKER_TEST_IMAGE, system_packages=("jq",)),
    )
    output, code = _run(DockerRunner(docker_engine, config), task)
    assert code == 0, output
    assert "clearq-docker: installing system packages: jq" in output
    assert "jq-1.6" in output
