"""Install the task's own repository (``-e .``, ``./sub``) into the task's own env.

The env cache's entries never hold a task's repository (``clearq.envs.spec`` says why):
the repository is installed into a hard-link clone that belongs to one task, from the
checked-out workspace, after the workspace is built. Each path is resolved inside the
workspace (a symbolic link out of it is refused) and must be a Python project
(``pyproject.toml`` or ``setup.py``). The installer is the spec's: pip for the pip
manager, uv for the others; every argument is an absolute path or a fixed option.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uv import find_uv_bin

from clearq.envs.process import run_installer
from clearq.envs.progress import BuildProgress
from clearq.errors import EnvBuildError, EnvFailure
from clearq.local_requirements import LocalRequirement
from clearq.models import EnvManager

__all__ = ["install_local", "local_targets"]

_PROJECT_FILES = ("pyproject.toml", "setup.py")


def local_targets(local: Sequence[LocalRequirement], workspace: Path) -> list[str]:
    """The installer arguments for ``local``: ``-e /abs/path[extras]`` or ``/abs/path``.

    Raises EnvBuildError (failure ``requirement``) for a path that resolves outside
    ``workspace``, is missing, or holds no Python project.
    """
    root = workspace.resolve()
    targets: list[str] = []
    for requirement in local:
        folder = (root / requirement.path).resolve()
        if not folder.is_relative_to(root):
            raise _refused(requirement, "resolves outside the task's repository")
        if not folder.is_dir():
            raise _refused(requirement, "is not a folder of the task's repository")
        if not any((folder / name).is_file() for name in _PROJECT_FILES):
            raise _refused(requirement, "holds no pyproject.toml or setup.py to install")
        extras = f"[{','.join(requirement.extras)}]" if requirement.extras else ""
        targets += ["-e", f"{folder}{extras}"] if requirement.editable else [f"{folder}{extras}"]
    return targets


def install_local(
    python: Path,
    local: Sequence[LocalRequirement],
    workspace: Path,
    *,
    manager: EnvManager,
    index_urls: Sequence[str],
    progress: BuildProgress,
) -> None:
    """Install ``local`` from ``workspace`` into the env of ``python`` (the task's own)."""
    targets = local_targets(local, workspace)
    lines = [requirement.line for requirement in local]
    progress.stage(f"installing the task's repository ({', '.join(lines)})")
    if manager is EnvManager.PIP:
        argv = [str(python), "-m", "pip", "install", "--no-input"]
    else:
        argv = [find_uv_bin(), "pip", "install", "--python", str(python)]
    for url in index_urls:
        argv += ["--extra-index-url", url]
    run_installer(
        [*argv, *targets],
        manager=manager.value,
        step="installing the task's repository",
        progress=progress,
        requirements=lines,
        cwd=workspace,
    )


def _refused(requirement: LocalRequirement, why: str) -> EnvBuildError:
    return EnvBuildError(
        EnvFailure.REQUIREMENT,
        f"requirement {requirement.line!r}: {requirement.path} {why}",
        requirement=requirement.line,
    )
