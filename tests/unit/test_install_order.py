"""Install-order steps in a spec and in what Task.init captures (no installer runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq.envs import EnvBuildError, check_spec
from clearq.envs.docker import DockerConfig
from clearq.errors import InvalidInput
from clearq.models import EnvManager, EnvSpec
from clearq.sdk.capture.packages import capture_packages


def test_steps_are_checked_and_run_in_order() -> None:
    spec = EnvSpec(
        install_first=(" torch==2.3.1 ", "clearq"),
        requirements=("numpy",),
        no_build_isolation=("flash-attn==2.5.9",),
    )
    checked = check_spec(spec)
    assert checked.steps == (
        (("torch==2.3.1",), False),
        (("numpy",), False),
        (("flash-attn==2.5.9",), True),
    )


@pytest.mark.parametrize("field", ["install_first", "no_build_isolation"])
def test_options_in_a_step_are_refused(field: str) -> None:
    with pytest.raises(EnvBuildError, match="installer option"):
        check_spec(EnvSpec(**{field: ("--index-url=https://evil.example",)}))  # type: ignore[arg-type]


def test_steps_need_a_manager_that_installs_them() -> None:
    spec = EnvSpec(manager=EnvManager.POETRY, lock_file="x", install_first=("torch",))
    with pytest.raises(EnvBuildError, match="uv and pip managers"):
        check_spec(spec)


def test_capture_moves_a_listed_package_to_its_step(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "requirements.txt").write_text("torch==2.3.1\nflash-attn==2.5.9\nnumpy\n")
    env = capture_packages(
        tmp_path / "train.py", first=["torch==2.3.1"], no_build_isolation=["flash-attn==2.5.9"]
    ).env
    assert env.requirements == ("numpy",)
    assert env.install_first == ("torch==2.3.1",)
    assert env.no_build_isolation == ("flash-attn==2.5.9",)


def test_add_requirements_takes_one_step() -> None:
    from clearq import Task

    with pytest.raises(InvalidInput, match="pick one"):
        Task.add_requirements("torch", first=True, no_build_isolation=True)


def test_docker_mode_says_it_does_not_install_steps(tmp_path: Path) -> None:
    from clearq.envs.docker import DockerRunner
    from clearq.errors import ContainerError
    from tests.unit.test_dockerexec import FakeEngine

    runner = DockerRunner(FakeEngine(0), DockerConfig(envs_dir=tmp_path / "envs"))
    with pytest.raises(ContainerError, match="install_first and no_build_isolation"):
        runner._requirements(EnvSpec(install_first=("torch",)))
