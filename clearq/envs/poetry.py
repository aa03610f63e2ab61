"""The poetry builder: a ``poetry.lock`` installed into a uv venv; poetry itself not needed.

With the ``pyproject.toml`` (``EnvSpec.project_file``), poetry-core reads the project's
main dependencies and the lock's pins constrain them: the resolver then picks exactly
the locked versions, and markers and groups mean what poetry means by them. Without
it, the lock's main-group packages are installed as pinned lines, each with the markers
the lock records. Packages from another index (a ``legacy`` source) add that index;
git and URL sources become direct references; a local path cannot be installed by an
agent and is refused; clearq itself is left out (the agent provides it).
``EnvSpec.requirements`` go on top.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from poetry.core.factory import Factory

from clearq.envs.builder import env_python
from clearq.envs.progress import BuildProgress
from clearq.envs.spec import AGENT_PROVIDED, CheckedSpec
from clearq.envs.uv import uv_create_venv, uv_install
from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["LockedPackage", "PoetryBuilder", "read_lock"]

_MAIN = "main"


class LockedPackage:
    """One ``[[package]]`` of a poetry.lock, as an installable requirement."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.name = str(entry["name"])
        self.version = str(entry["version"])
        self.source: dict[str, Any] = entry.get("source") or {}
        self.groups: list[str] = list(entry.get("groups") or [entry.get("category", _MAIN)])
        markers = entry.get("markers")
        self.marker = str(markers.get(_MAIN, "") if isinstance(markers, dict) else markers or "")

    @property
    def from_an_index(self) -> bool:
        """True for a package from a package index (the default one or another)."""
        return self.source.get("type") in (None, "legacy")

    @property
    def index_url(self) -> str | None:
        """The index this package comes from, when it is not the default one."""
        return str(self.source["url"]) if self.source.get("type") == "legacy" else None

    def requirement(self) -> str:
        """The line that installs exactly this package."""
        kind = self.source.get("type")
        if kind == "git":
            ref = self.source.get("resolved_reference") or self.source.get("reference")
            line = f"{self.name} @ git+{self.source['url']}@{ref}"
        elif kind == "url":
            line = f"{self.name} @ {self.source['url']}"
        elif kind in ("directory", "file"):
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                f"poetry.lock: {self.name} comes from the local path {self.source.get('url')!r}, "
                "which an agent cannot install; publish it or install it from the repository",
                requirement=self.name,
            )
        else:
            line = f"{self.name}=={self.version}"
        return f"{line} ; {self.marker}" if self.marker else line


def read_lock(text: str) -> list[LockedPackage]:
    """The packages of a poetry.lock's text but clearq (the agent provides it).

    Raises EnvBuildError when the text is not a poetry.lock.
    """
    try:
        data = tomllib.loads(text)
        found = [LockedPackage(entry) for entry in data.get("package", [])]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT, f"poetry.lock cannot be read: {exc}; regenerate it"
        ) from None
    return [p for p in found if canonicalize_name(p.name) != AGENT_PROVIDED]


class PoetryBuilder:
    """Builds a poetry project's locked environment."""

    relocatable = True

    def build(self, spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
        """Create a uv venv in ``dest`` and install the locked packages into it."""
        if spec.spec.lock_file is None:
            raise EnvBuildError(EnvFailure.REQUIREMENT, "a poetry spec needs poetry.lock's text")
        progress.stage("reading poetry.lock")
        locked = read_lock(spec.spec.lock_file)
        urls = [*spec.index_urls, *_unique(p.index_url for p in locked if p.index_url)]
        uv_create_venv(dest, spec.python, progress, manager="poetry")
        # Scratch files stay outside the cache: an eviction pass would take them for a
        # dead build.
        with tempfile.TemporaryDirectory(prefix="clearq-env-") as scratch:
            if spec.spec.project_file is not None:
                wanted, sources = _project_requirements(spec.spec.project_file, Path(scratch))
                urls += [u for u in sources if u not in urls]
                constraints = Path(scratch) / "constraints.txt"
                pins = [f"{p.name}=={p.version}" for p in locked if p.from_an_index]
                constraints.write_text("\n".join(pins) + "\n")
            else:
                wanted = [p.requirement() for p in locked if _MAIN in p.groups]
                constraints = None
            lines = [*wanted, *spec.requirements]
            if lines:
                uv_install(
                    env_python(dest),
                    lines,
                    index_urls=urls,
                    progress=progress,
                    manager="poetry",
                    constraints=constraints,
                )


def _project_requirements(text: str, scratch: Path) -> tuple[list[str], list[str]]:
    """The main dependencies of a poetry pyproject.toml as lines, and its index URLs."""
    folder = scratch / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(text)
    try:
        poetry = Factory().create_poetry(folder, with_groups=False)
    except (RuntimeError, ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT, f"pyproject.toml cannot be read by poetry-core: {exc}"
        ) from None
    lines = []
    for dependency in poetry.package.requires:
        if dependency.is_optional() or dependency.name == AGENT_PROVIDED:
            continue
        if dependency.source_type in ("directory", "file"):
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                f"pyproject.toml: {dependency.name} is a local path, which an agent cannot "
                "install; publish it or install it from the repository",
                requirement=dependency.name,
            )
        lines.append(str(Requirement(dependency.to_pep_508())))
    sources = poetry.local_config.get("source") or []
    return lines, [str(s["url"]) for s in sources if s.get("url")]


def _unique(items: Iterator[str | None]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))
