"""The conda builder: an ``environment.yml`` or conda-lock file, with the conda on PATH.

micromamba, mamba and conda are looked for in that order; with none on the machine the
build fails with a clear error naming what to install. conda writes the environment's
own path into the files it installs, so a conda environment cannot be renamed: the
cache builds it in place (``relocatable`` is False) and marks it complete at the end.
``EnvSpec.requirements`` are installed on top with uv. The Python version comes from
the file (micromamba also takes a version the spec names as an extra ``python=`` spec).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from clearq.envs.builder import env_python
from clearq.envs.process import run_installer
from clearq.envs.progress import BuildProgress
from clearq.envs.spec import CheckedSpec
from clearq.envs.uv import uv_install
from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["CONDA_TOOLS", "CondaBuilder", "find_conda"]

CONDA_TOOLS = ("micromamba", "mamba", "conda")
_INSTALL_HINT = (
    "install micromamba (https://mamba.readthedocs.io/en/latest/installation/"
    "micromamba-installation.html) or conda on the agent's machine and put it on PATH, "
    "or build the task with uv from a requirements list"
)


def find_conda() -> Path | None:
    """The first of micromamba, mamba, conda on PATH, or None."""
    for name in CONDA_TOOLS:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    return None


class CondaBuilder:
    """Builds conda environment files with micromamba, mamba or conda."""

    relocatable = False

    def build(self, spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
        """Create the conda environment of the spec's file at ``dest``."""
        text = spec.spec.lock_file
        if text is None:
            raise EnvBuildError(
                EnvFailure.REQUIREMENT, "a conda spec needs environment.yml's (or a lock's) text"
            )
        tool = find_conda()
        if tool is None:
            raise EnvBuildError(
                EnvFailure.TOOL,
                f"this task's environment is a conda one, and none of {', '.join(CONDA_TOOLS)} "
                f"is on this machine's PATH: {_INSTALL_HINT}",
                manager="conda",
            )
        # Scratch files stay outside the cache: an eviction pass would take them for a
        # dead build.
        with tempfile.TemporaryDirectory(prefix="clearq-env-") as scratch:
            file = Path(scratch) / _file_name(spec.spec.lock_kind)
            file.write_text(text)
            progress.stage(f"creating a conda environment with {tool.name}")
            run_installer(
                _create_argv(tool, file, dest, spec.spec.python),
                manager="conda",
                step=f"{tool.name} creating the environment",
                progress=progress,
                cwd=Path(scratch),
            )
        if not env_python(dest).exists():
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                "the conda environment has no Python: add 'python' to its dependencies",
                manager="conda",
            )
        if spec.requirements:
            uv_install(
                env_python(dest),
                spec.requirements,
                index_urls=spec.index_urls,
                progress=progress,
                manager="conda",
            )


def _file_name(lock_kind: str | None) -> str:
    kind = (lock_kind or "").strip().lower()
    return "conda-lock.yml" if kind.endswith("lock.yml") else "environment.yml"


def _create_argv(tool: Path, file: Path, dest: Path, python: str | None) -> list[str]:
    if tool.name == "micromamba":
        argv = [str(tool), "create", "--yes", "--prefix", str(dest), "--file", str(file)]
        pinned = python is not None and file.name != "conda-lock.yml"
        return [*argv, f"python={python}"] if pinned else argv
    if file.name == "conda-lock.yml":
        lock = shutil.which("conda-lock")
        if lock is None:
            raise EnvBuildError(
                EnvFailure.TOOL,
                f"a conda-lock file needs micromamba or the conda-lock tool; {_INSTALL_HINT}",
                manager="conda",
            )
        return [lock, "install", "--prefix", str(dest), str(file)]
    return [str(tool), "env", "create", "--prefix", str(dest), "--file", str(file)]
