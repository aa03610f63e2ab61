"""Requirement lines that install the task's own repository from a path (no I/O)."""

from __future__ import annotations

import pytest

from clearq.envs import EnvBuildError, EnvFailure, check_spec, env_key
from clearq.errors import InvalidInput
from clearq.local_requirements import LocalRequirement, local_requirement
from clearq.models import EnvManager, EnvSpec


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (".", LocalRequirement(".", ".", editable=False)),
        ("-e .", LocalRequirement("-e .", ".", editable=True)),
        ("--editable ./pkg", LocalRequirement("--editable ./pkg", "pkg", editable=True)),
        ("--editable=./pkg", LocalRequirement("--editable=./pkg", "pkg", editable=True)),
        ("./libs/core", LocalRequirement("./libs/core", "libs/core", editable=False)),
        (
            "-e .[dev, test]",
            LocalRequirement("-e .[dev, test]", ".", editable=True, extras=("dev", "test")),
        ),
        ("  -e .  ", LocalRequirement("-e .", ".", editable=True)),
    ],
)
def test_the_repository_and_its_folders_are_local_requirements(
    line: str, expected: LocalRequirement
) -> None:
    assert local_requirement(line) == expected


@pytest.mark.parametrize("line", ["numpy", "pkg @ https://host/pkg.whl", "-e git+https://x/y"])
def test_other_lines_are_not_local_requirements(line: str) -> None:
    assert local_requirement(line) is None


@pytest.mark.parametrize(
    "line", ["..", "../other", "-e ../other", "./a/../../b", "/srv/pkg", "-e ~/pkg", ".hidden"]
)
def test_paths_outside_the_repository_are_refused(line: str) -> None:
    with pytest.raises(InvalidInput, match="outside the task's repository"):
        local_requirement(line)


def test_malformed_extras_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not an extra"):
        local_requirement(".[dev;rm]")


def test_the_spec_keeps_them_apart_and_out_of_the_cache_key() -> None:
    spec = EnvSpec(requirements=("six==1.16.0", "-e .", "./tools"))
    checked = check_spec(spec)
    assert checked.requirements == ("six==1.16.0",)
    assert [r.line for r in checked.local] == ["-e .", "./tools"]
    # The cached entry never holds the repository: same key as without the lines.
    assert env_key(spec) == env_key(EnvSpec(requirements=("six==1.16.0",)))


def test_a_path_outside_is_a_requirement_failure_of_the_spec() -> None:
    with pytest.raises(EnvBuildError, match="outside the task's repository") as caught:
        check_spec(EnvSpec(requirements=("-e ../elsewhere",)))
    assert caught.value.failure is EnvFailure.REQUIREMENT
    assert caught.value.requirement == "-e ../elsewhere"


def test_a_conda_env_does_not_install_the_repository() -> None:
    spec = EnvSpec(manager=EnvManager.CONDA, requirements=("-e .",), lock_file="name: x\n")
    with pytest.raises(EnvBuildError, match="use the uv or pip manager"):
        check_spec(spec)


@pytest.mark.parametrize("line", ["-e .", "./pkg", "-e ../outside"])
def test_docker_mode_says_it_does_not_install_the_repository(line: str) -> None:
    from clearq.envs.docker_deps import checked_requirements
    from clearq.errors import ContainerError

    with pytest.raises(ContainerError, match="Docker mode does not do yet"):
        checked_requirements(["six", line])
