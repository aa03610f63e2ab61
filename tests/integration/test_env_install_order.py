"""Install order in the spec: ``install_first`` before the requirements, and
``no_build_isolation`` last, built against the env as it stands; real uv and pip venvs.

The package built here imports ``six`` in its ``setup.py``: it builds only when ``six``
is already in the env and the build is not isolated from it, as flash-attn needs torch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clearq.envs import EnvBuildError, EnvCache, env_key
from clearq.models import EnvManager, EnvSpec

SETUP = """\
import six  # importable at build time only without isolation, after six is installed
from setuptools import setup

setup(name="needs-six-to-build", version="0.1", py_modules=["needs_six"])
"""


@pytest.fixture
def package(tmp_path: Path) -> str:
    folder = tmp_path / "needs-six"
    folder.mkdir()
    (folder / "setup.py").write_text(SETUP)
    (folder / "needs_six.py").write_text("VALUE = 'built against six'\n")
    return f"needs-six-to-build @ {folder.as_uri()}"


@pytest.mark.parametrize("manager", [EnvManager.UV, EnvManager.PIP])
def test_a_package_builds_against_what_an_earlier_step_installed(
    tmp_path: Path, package: str, manager: EnvManager
) -> None:
    spec = EnvSpec(
        manager=manager,
        install_first=("six==1.16.0", "setuptools", "wheel"),
        requirements=("idna==3.7",),
        no_build_isolation=(package,),
    )
    env = EnvCache(tmp_path / "envs").ensure(spec)
    done = subprocess.run(
        [str(env.python), "-c", "import needs_six, idna; print(needs_six.VALUE)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "built against six", done.stderr


def test_in_one_isolated_step_the_same_package_does_not_build(tmp_path: Path, package: str) -> None:
    spec = EnvSpec(requirements=("six==1.16.0", "setuptools", package))
    with pytest.raises(EnvBuildError, match="needs-six-to-build"):
        EnvCache(tmp_path / "envs").ensure(spec)


def test_the_steps_are_part_of_the_key() -> None:
    plain = EnvSpec(requirements=("torch==2.3.1", "flash-attn==2.5.9"))
    ordered = EnvSpec(install_first=("torch==2.3.1",), no_build_isolation=("flash-attn==2.5.9",))
    assert env_key(plain) != env_key(ordered)
