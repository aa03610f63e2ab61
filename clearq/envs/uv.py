"""The uv builder: ``uv venv --relocatable`` then ``uv pip install``; the fast path.

A spec with a ``uv.lock`` is installed with ``uv sync --locked`` first
(``clearq.envs.uvlock``), then its steps in order (``CheckedSpec.steps``):
``install_first``, the requirements, then ``no_build_isolation`` lines with
``--no-build-isolation``, each step one resolver call.

uv comes with clearq (the ``uv`` package on PyPI holds the binary). The venv is made
relocatable (entry-point scripts find their interpreter relative to themselves), so it
can be built in a temporary folder, renamed into the cache, and hard-link cloned. uv
finds the requested Python on the machine or installs a managed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uv import find_uv_bin

from clearq.envs.builder import env_python
from clearq.envs.process import run_installer
from clearq.envs.progress import BuildProgress
from clearq.envs.spec import CheckedSpec, check_torch_backend
from clearq.envs.uvlock import UV_LOCK, uv_sync_locked
from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["UvBuilder", "uv_create_venv", "uv_install"]


class UvBuilder:
    """Builds pip-style requirement lists with uv."""

    relocatable = True

    def build(self, spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
        """Create a venv in ``dest`` and install the spec's ``uv.lock`` (if it has one)
        and requirements into it."""
        uv_create_venv(dest, spec.python, progress, manager="uv")
        if spec.spec.lock_file is not None or spec.spec.lock_kind is not None:
            _check_lock_kind(spec.spec.lock_kind)
            uv_sync_locked(spec, dest, progress)
        for lines, unisolated in spec.steps:
            uv_install(
                env_python(dest),
                lines,
                index_urls=spec.index_urls,
                progress=progress,
                manager="uv",
                no_build_isolation=unisolated,
                torch_backend=spec.spec.torch_backend,
            )


def _check_lock_kind(kind: str | None) -> None:
    if (kind or "").strip().lower() != UV_LOCK:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"the uv manager installs a uv.lock, not {kind or 'an unnamed lock file'}; give "
            "a poetry.lock to the poetry manager and an environment.yml to conda",
            manager="uv",
        )


def uv_create_venv(dest: Path, python: str, progress: BuildProgress, *, manager: str) -> None:
    """A relocatable venv in ``dest`` for ``python`` (a version request)."""
    progress.stage(f"creating a Python {python} venv")
    argv = [find_uv_bin(), "venv", "--relocatable", "--no-project", "--python", python, str(dest)]
    run_installer(
        argv,
        manager=manager,
        step=f"creating a Python {python} venv",
        progress=progress,
        cwd=dest.parent,
    )


def uv_install(
    python: Path,
    requirements: Sequence[str],
    *,
    index_urls: Sequence[str],
    progress: BuildProgress,
    manager: str,
    constraints: Path | None = None,
    no_build_isolation: bool = False,
    torch_backend: str | None = None,
) -> None:
    """Install ``requirements`` into the environment of ``python`` with uv (building
    them against the environment as it stands with ``no_build_isolation``; PyTorch's
    packages of ``torch_backend``'s build, ``auto``: the one for this machine's driver)."""
    how = " without build isolation" if no_build_isolation else ""
    progress.stage(f"installing {len(requirements)} requirements{how}")
    argv = [find_uv_bin(), "pip", "install", "--python", str(python)]
    if no_build_isolation:
        argv.append("--no-build-isolation")
    for url in index_urls:
        argv += ["--extra-index-url", url]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    if torch_backend is not None:
        argv += ["--torch-backend", check_torch_backend(torch_backend)]
    argv += ["--", *requirements]
    run_installer(
        argv,
        manager=manager,
        step="installing requirements",
        progress=progress,
        requirements=requirements,
        cwd=python.parent,
    )
