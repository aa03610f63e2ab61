"""A project's ``uv.lock`` captured with its ``pyproject.toml`` and installed by the uv
builder with ``uv sync --locked``: real uv, real venvs, locks made by ``uv lock``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from uv import find_uv_bin

from clearq.envs import EnvBuildError, EnvCache, EnvFailure
from clearq.models import EnvSpec
from clearq.sdk.capture.packages import PackageSource, capture_packages

PYPROJECT = """\
[project]
name = "locked-demo"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{deps}]
"""


def _locked_project(folder: Path, *deps: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(deps=", ".join(f'"{d}"' for d in deps)))
    subprocess.run(
        [find_uv_bin(), "lock", "--quiet"], cwd=folder, check=True, capture_output=True, timeout=300
    )
    return folder


def _spec(folder: Path, **extra: object) -> EnvSpec:
    return EnvSpec(
        lock_file=(folder / "uv.lock").read_text(),
        lock_kind="uv.lock",
        project_file=(folder / "pyproject.toml").read_text(),
        **extra,  # type: ignore[arg-type]
    )


def _run(python: Path, code: str) -> str:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def cache(tmp_path: Path) -> EnvCache:
    return EnvCache(tmp_path / "envs")


def test_capture_takes_the_lock_and_its_pyproject(tmp_path: Path) -> None:
    project = _locked_project(tmp_path / "repo", "six==1.16.0")
    (project / "requirements.txt").write_text("numpy\n")  # the lock is more exact: it wins
    (project / "train.py").write_text("import six\n")
    captured = capture_packages(project / "train.py", repo_root=project)
    assert captured.source is PackageSource.UV_LOCK
    env = captured.env
    assert env.lock_kind == "uv.lock"
    assert env.lock_file == (project / "uv.lock").read_text()
    assert env.project_file == (project / "pyproject.toml").read_text()
    assert env.requirements == ()


def test_a_uv_lock_is_installed_exactly_with_lines_on_top(cache: EnvCache, tmp_path: Path) -> None:
    project = _locked_project(tmp_path / "repo", "six==1.16.0")
    spec = _spec(project, requirements=("idna==3.7",))
    env = cache.ensure(spec)
    assert not env.hit
    code = "import six, idna; print(six.__version__, idna.__version__)"
    assert _run(env.python, code) == "1.16.0 3.7"  # built aside, renamed: still works
    assert _run(env.python, "import importlib.util as u; print(u.find_spec('locked_demo'))") == (
        "None"
    )  # the project itself is not in the cached entry
    assert cache.ensure(spec).hit


def test_a_lock_that_does_not_match_its_pyproject_fails_saying_so(
    cache: EnvCache, tmp_path: Path
) -> None:
    project = _locked_project(tmp_path / "repo", "six==1.16.0")
    stale = _spec(project).model_copy(
        update={"project_file": PYPROJECT.format(deps='"six==1.16.0", "idna==3.7"')}
    )
    with pytest.raises(EnvBuildError, match="uv sync --locked") as caught:
        cache.ensure(stale)
    assert "uv lock" in caught.value.output  # uv's own hint reaches the task's log
    assert not caught.value.infra
    assert cache.entries() == []


def test_a_lock_with_a_local_path_source_is_refused(cache: EnvCache, tmp_path: Path) -> None:
    project = _locked_project(tmp_path / "repo", "six==1.16.0")
    lock = (project / "uv.lock").read_text()
    lock += '\n[[package]]\nname = "agent-secret"\nversion = "1.0"\nsource = { path = "/etc" }\n'
    spec = _spec(project).model_copy(update={"lock_file": lock})
    with pytest.raises(EnvBuildError, match="local path '/etc'") as caught:
        cache.ensure(spec)
    assert caught.value.failure is EnvFailure.REQUIREMENT


def test_a_lock_without_its_pyproject_says_what_is_missing(cache: EnvCache, tmp_path: Path) -> None:
    project = _locked_project(tmp_path / "repo", "six==1.16.0")
    spec = _spec(project).model_copy(update={"project_file": None})
    with pytest.raises(EnvBuildError, match="needs both"):
        cache.ensure(spec)
