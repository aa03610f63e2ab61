"""A project's own statement of what it needs, when it has one.

Looked for in one folder (the repository root, or the script's folder without a
repository), first match wins:

1. ``uv.lock`` beside a ``pyproject.toml`` -> both files, installed with
   ``uv sync --locked`` (the most exact statement a project can make);
2. ``requirements.txt`` -> its requirement lines, built with uv;
3. ``poetry.lock`` beside a ``pyproject.toml`` -> the lock file, built with poetry;
4. ``environment.yml`` / ``environment.yaml`` -> the file, built with conda;
5. ``pyproject.toml`` with PEP 621 ``[project].dependencies`` -> those lines, with uv.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from pathlib import Path

from clearq.enums import EnvManager
from clearq.errors import InvalidInput
from clearq.sdk.capture.packages_requirements import check_requirements, parse_requirements
from clearq.valueclass import replace, value_class

REQUIREMENTS_TXT = "requirements.txt"
POETRY_LOCK = "poetry.lock"
UV_LOCK = "uv.lock"
PYPROJECT_TOML = "pyproject.toml"
ENVIRONMENT_YML = ("environment.yml", "environment.yaml")

# A YAML list item whose value starts with '-' can only be a pip option in the
# ``pip:`` section of a conda file (``- --index-url ...``, ``- -e .``).
_CONDA_PIP_OPTION = re.compile(r"^\s*-\s+(-\S+)", re.MULTILINE)


class PackageSource(enum.StrEnum):
    """Where a task's package list came from."""

    REQUIREMENTS_TXT = "requirements.txt"
    POETRY_LOCK = "poetry.lock"
    UV_LOCK = "uv.lock"
    ENVIRONMENT_YML = "environment.yml"
    PYPROJECT = "pyproject.toml"
    IMPORTS = "imports"
    FREEZE = "freeze"


@value_class
class PackageList:
    """A list of packages (or a lock file), where it came from, and what to build it with."""

    source: PackageSource
    manager: EnvManager
    requirements: tuple[str, ...] = ()
    lock_file: str | None = None
    lock_kind: str | None = None
    project_file: str | None = None
    """The ``pyproject.toml`` a lock needs beside it (``uv.lock``)."""
    warnings: tuple[str, ...] = ()


def find_project_packages(folder: Path) -> tuple[PackageList | None, tuple[str, ...]]:
    """The first project file in ``folder`` that lists packages, read, and warnings.

    Found files that list nothing usable are passed over with a warning. Raises
    InvalidInput for a file that holds pip options or cannot be read.
    """
    warnings: list[str] = []
    for reader in _READERS:
        found = reader(folder)
        if found is None:
            continue
        warnings.extend(found.warnings)
        if found.requirements or found.lock_file is not None:
            return replace(found, warnings=()), tuple(warnings)
    return None, tuple(warnings)


def _uv_lock(folder: Path) -> PackageList | None:
    lock = folder / UV_LOCK
    if not lock.is_file():
        return None
    if not (folder / PYPROJECT_TOML).is_file():
        return PackageList(
            PackageSource.UV_LOCK,
            EnvManager.UV,
            warnings=(f"{lock} has no pyproject.toml beside it, so uv sync cannot use it",),
        )
    return PackageList(
        PackageSource.UV_LOCK,
        EnvManager.UV,
        lock_file=_read(lock),
        lock_kind=UV_LOCK,
        project_file=_read(folder / PYPROJECT_TOML),
    )


def _requirements_txt(folder: Path) -> PackageList | None:
    path = folder / REQUIREMENTS_TXT
    if not path.is_file():
        return None
    lines = parse_requirements(_read(path), source=str(path))
    empty = () if lines else (f"{path} lists no packages; passed over",)
    return PackageList(
        PackageSource.REQUIREMENTS_TXT, EnvManager.UV, requirements=lines, warnings=empty
    )


def _poetry(folder: Path) -> PackageList | None:
    lock = folder / POETRY_LOCK
    if not lock.is_file():
        return None
    if not (folder / PYPROJECT_TOML).is_file():
        return PackageList(
            PackageSource.POETRY_LOCK,
            EnvManager.POETRY,
            warnings=(f"{lock} has no pyproject.toml beside it, so poetry cannot use it",),
        )
    return PackageList(
        PackageSource.POETRY_LOCK,
        EnvManager.POETRY,
        lock_file=_read(lock),
        lock_kind=POETRY_LOCK,
    )


def _conda(folder: Path) -> PackageList | None:
    for name in ENVIRONMENT_YML:
        path = folder / name
        if path.is_file():
            text = _read(path)
            _refuse_conda_pip_options(text, path)
            return PackageList(
                PackageSource.ENVIRONMENT_YML,
                EnvManager.CONDA,
                lock_file=text,
                lock_kind=ENVIRONMENT_YML[0],
            )
    return None


def _pyproject(folder: Path) -> PackageList | None:
    path = folder / PYPROJECT_TOML
    if not path.is_file():
        return None
    import tomllib  # only for a project that has the file

    try:
        data = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML ({exc}); fix it or remove it") from None
    dependencies = data.get("project", {}).get("dependencies")
    if not dependencies:
        return None
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise InvalidInput(f"{path}: [project].dependencies must be a list of strings")
    lines = check_requirements(dependencies, source=f"{path} [project].dependencies")
    return PackageList(PackageSource.PYPROJECT, EnvManager.UV, requirements=lines)


_READERS: tuple[Callable[[Path], PackageList | None], ...] = (
    _uv_lock,
    _requirements_txt,
    _poetry,
    _conda,
    _pyproject,
)


def _refuse_conda_pip_options(text: str, path: Path) -> None:
    match = _CONDA_PIP_OPTION.search(text)
    if match is not None:
        raise InvalidInput(
            f"{path}: {match.group(1)!r} is a pip option, and clearq refuses options in "
            "requirement lists (they could point an agent's installer anywhere). Put index "
            "URLs in the task's EnvSpec.index_urls instead."
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
