"""A ``uv.lock`` installed with ``uv sync --locked``, into the env the uv builder made.

The lock and the ``pyproject.toml`` it was locked from (``EnvSpec.lock_file`` and
``project_file``) are written to a scratch project folder beside the build, and
``uv sync --locked --no-install-workspace`` installs exactly the locked packages into
the build's venv (``UV_PROJECT_ENVIRONMENT``): ``--locked`` fails when the lock does not
match the pyproject (the task's author must run ``uv lock``), and the project itself is
never installed there, as no cached entry holds a task's code (a task that wants its
repository installed lists ``-e .``, ``clearq.envs.local``). uv's defaults hold
otherwise: the default groups (``dev``) are installed, as a plain ``uv sync`` does.

A lock that installs packages from local paths other than the project itself (a
workspace member, ``[tool.uv.sources]`` paths) is refused: those paths would be read on
the agent's machine, outside the task's code.
"""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

from uv import find_uv_bin

from clearq.envs.builder import env_python
from clearq.envs.process import run_installer
from clearq.envs.progress import BuildProgress
from clearq.envs.spec import CheckedSpec
from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["UV_LOCK", "uv_sync_locked"]

UV_LOCK = "uv.lock"
_LOCAL_SOURCES = ("path", "directory", "editable", "virtual")


def uv_sync_locked(spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
    """Install the spec's ``uv.lock`` into the venv at ``dest`` with ``uv sync --locked``."""
    lock, project = spec.spec.lock_file, spec.spec.project_file
    if lock is None or project is None:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            "a uv.lock is installed with the pyproject.toml it was locked from: the spec "
            "needs both (EnvSpec.lock_file and project_file)",
            manager="uv",
        )
    _refuse_local_sources(lock)
    progress.stage("installing uv.lock (uv sync --locked)")
    with tempfile.TemporaryDirectory(prefix=".uv-project-", dir=dest.parent) as scratch:
        folder = Path(scratch)
        (folder / "pyproject.toml").write_text(project)
        (folder / UV_LOCK).write_text(lock)
        argv = [find_uv_bin(), "sync", "--locked", "--no-install-workspace"]
        argv += ["--project", str(folder), "--python", str(env_python(dest))]
        for url in spec.index_urls:
            argv += ["--extra-index-url", url]
        run_installer(
            argv,
            manager="uv",
            step="installing uv.lock (uv sync --locked)",
            progress=progress,
            cwd=folder,
            variables={"UV_PROJECT_ENVIRONMENT": str(dest)},
        )


def _refuse_local_sources(lock: str) -> None:
    try:
        data = tomllib.loads(lock)
    except tomllib.TOMLDecodeError as exc:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT, f"the task's uv.lock is not valid TOML: {exc}", manager="uv"
        ) from None
    for package in data.get("package", []):
        source = package.get("source", {}) if isinstance(package, dict) else {}
        for kind in _LOCAL_SOURCES:
            where = source.get(kind) if isinstance(source, dict) else None
            if where is not None and where != ".":
                name = package.get("name", "?")
                raise EnvBuildError(
                    EnvFailure.REQUIREMENT,
                    f"the task's uv.lock installs {name} from the local path {where!r}, which "
                    "would be read on the agent's machine; clearq installs a uv.lock's "
                    "registry, URL and git packages only (list '-e ./path' among the task's "
                    "requirements to install a folder of its repository)",
                    requirement=str(name),
                    manager="uv",
                )
