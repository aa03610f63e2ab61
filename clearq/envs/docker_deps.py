"""What a container's venv installs: the task's requirements checked, and clearq's own.

clearq is never installed into a container by name from a package index, where the
name may belong to someone else: the agent's own package folder is mounted read-only
(``agent_clearq`` finds it and its dependencies), and any ``clearq`` line among a task's
requirements is dropped.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from clearq.errors import ContainerError, InvalidInput
from clearq.local_requirements import local_requirement

__all__ = ["agent_clearq", "checked_requirements", "index_args"]

_OWN_NAME = "clearq"
_INDEX_SCHEMES = ("https://", "http://", "file://")


def agent_clearq() -> tuple[Path, tuple[str, ...]]:
    """The running clearq's package folder and its dependencies (no extras)."""
    package = Path(__file__).resolve().parents[1]
    try:
        declared = importlib.metadata.requires(_OWN_NAME) or []
    except importlib.metadata.PackageNotFoundError as e:
        raise ContainerError(
            "clearq is not installed as a distribution here, so its dependencies are not "
            "known; install it (pip install -e .) on the agent"
        ) from e
    needed = []
    for line in declared:
        requirement = Requirement(line)
        if requirement.marker is None or "extra" not in str(requirement.marker):
            needed.append(line)
    return package, tuple(needed)


def checked_requirements(lines: Iterable[str]) -> tuple[str, ...]:
    """Requirement lines stripped, deduplicated and sorted, without clearq itself.

    Raises ContainerError for an installer option (``-e``, ``--index-url``, ...) or a
    line that is not a requirement: each line reaches pip as a requirement only.
    """
    kept = set()
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if _is_local(line):
            raise ContainerError(
                f"requirement {line!r} installs the task's repository from a path, which "
                "Docker mode does not do yet: run the task on a host-mode agent, or install "
                "the repository in the task's setup script"
            )
        if line.startswith("-"):
            raise ContainerError(
                f"requirement {line!r} is an installer option; Docker mode takes requirements "
                "only (give index URLs as the task's index URLs)"
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as e:
            raise ContainerError(f"requirement {line!r} is not a requirement: {e}") from e
        if canonicalize_name(requirement.name) != _OWN_NAME:
            kept.add(line)
    return tuple(sorted(kept))


def _is_local(line: str) -> bool:
    try:
        return local_requirement(line) is not None
    except InvalidInput:
        return True  # a path outside the repository: refused as well


def index_args(urls: Iterable[str]) -> list[str]:
    """pip's options for the task's index URLs: the first replaces the default index."""
    checked = [url.strip() for url in urls if url.strip()]
    for url in checked:
        if not url.startswith(_INDEX_SCHEMES) or any(c.isspace() for c in url):
            raise ContainerError(f"index URL {url!r} is not an http(s) or file URL")
    args: list[str] = []
    for position, url in enumerate(checked):
        args += ["--index-url" if position == 0 else "--extra-index-url", url]
    return args
