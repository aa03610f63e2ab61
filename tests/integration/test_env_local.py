"""The task's own repository installed from its workspace (``-e .``, ``.``, ``./sub``)
into an env of the task's own, with real uv and pip venvs; the cached entry never holds it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clearq.envs import EnvBuildError, EnvCache, EnvFailure, ReadyEnv
from clearq.models import EnvManager, EnvSpec

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
dependencies = ["six==1.16.0"]

[tool.setuptools.packages.find]
where = ["src"]
"""


def _project(folder: Path, name: str, value: str) -> Path:
    (folder / "src" / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    (folder / "src" / name / "__init__.py").write_text(f"VALUE = {value!r}\n")
    return folder


def _python(env: ReadyEnv, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd outside the workspace: the package comes from the env, not the current folder
    return subprocess.run(
        [str(env.python), "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.fixture
def cache(tmp_path: Path) -> EnvCache:
    return EnvCache(tmp_path / "envs")


@pytest.mark.parametrize("manager", [EnvManager.UV, EnvManager.PIP])
def test_an_editable_repository_is_installed_into_the_tasks_clone_only(
    cache: EnvCache, tmp_path: Path, manager: EnvManager
) -> None:
    workspace = _project(tmp_path / "code", "demo_pkg", "first")
    spec = EnvSpec(manager=manager, requirements=("-e .",))
    with cache.acquire(spec, clone_to=tmp_path / "env", workspace=workspace) as env:
        assert env.cloned
        assert env.local == ("-e .",)
        done = _python(
            env, "import demo_pkg, six; print(demo_pkg.VALUE, demo_pkg.__file__)", tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["first", str(workspace / "src/demo_pkg/__init__.py")]
    [entry] = cache.entries()
    shared = _python(
        ReadyEnv(
            key="", path=entry.path, python=entry.path / "bin/python", hit=True, build_seconds=0
        ),
        "import demo_pkg",
        tmp_path,
    )
    assert shared.returncode != 0  # the cached entry holds no task's code


def test_each_run_installs_its_own_commit_of_the_repository(
    cache: EnvCache, tmp_path: Path
) -> None:
    spec = EnvSpec(requirements=("./libs/core",))  # not editable: built and copied in
    one = _project(tmp_path / "one" / "libs" / "core", "core_pkg", "commit one").parents[1]
    two = _project(tmp_path / "two" / "libs" / "core", "core_pkg", "commit two").parents[1]
    first = cache.acquire(spec, clone_to=tmp_path / "env-one", workspace=one).env
    second = cache.acquire(spec, clone_to=tmp_path / "env-two", workspace=two).env
    assert second.hit  # the rest of the spec came from the cache ...
    assert first.key == second.key
    for env, value in ((first, "commit one"), (second, "commit two")):  # ... the code did not
        done = _python(env, "import core_pkg; print(core_pkg.VALUE)", tmp_path)
        assert done.stdout.strip() == value, done.stderr


def test_a_folder_that_links_out_of_the_workspace_is_refused(
    cache: EnvCache, tmp_path: Path
) -> None:
    outside = _project(tmp_path / "outside", "other_pkg", "x")
    workspace = tmp_path / "code"
    workspace.mkdir()
    (workspace / "vendored").symlink_to(outside)
    spec = EnvSpec(requirements=("-e ./vendored",))
    with pytest.raises(EnvBuildError, match="resolves outside") as caught:
        cache.acquire(spec, clone_to=tmp_path / "env", workspace=workspace)
    assert caught.value.failure is EnvFailure.REQUIREMENT
    assert not (tmp_path / "env").exists()  # the failed clone is gone


def test_a_folder_without_a_project_says_so(cache: EnvCache, tmp_path: Path) -> None:
    workspace = tmp_path / "code"
    workspace.mkdir()
    with pytest.raises(EnvBuildError, match=r"no pyproject\.toml or setup\.py"):
        cache.acquire(
            EnvSpec(requirements=("-e .",)), clone_to=tmp_path / "env", workspace=workspace
        )


def test_without_a_workspace_the_spec_cannot_be_had(cache: EnvCache) -> None:
    with pytest.raises(EnvBuildError, match="needs the task's workspace"):
        cache.acquire(EnvSpec(requirements=("-e .",)))
