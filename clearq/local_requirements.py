"""Requirement lines that install the task's own repository from a path.

``.``, ``./sub``, ``.[dev]`` and their editable forms ``-e .`` / ``--editable ./sub``
name the repository (or a folder in it) by a path relative to the repository's root;
the agent installs it from the checked-out workspace. Any other path (``../other``,
``/abs``, ``~/x``) would reach outside the task's code, and is refused.

Standard library only: the SDK's capture and the agent's env builders both read these
lines, and the capture stays free of heavy imports.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from clearq.errors import InvalidInput
from clearq.valueclass import value_class

__all__ = ["LocalRequirement", "local_requirement"]

_LINE = re.compile(
    r"^(?:(?P<flag>-e|--editable)(?:\s+|=))?(?P<path>[.~/][^\[\s]*)(?P<extras>\[[^\]]*\])?$"
)
_EXTRA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@value_class
class LocalRequirement:
    """A folder of the task's repository to install, as a requirement line named it."""

    line: str
    path: str
    """Relative to the repository's root, POSIX, ``.`` for the root itself."""
    editable: bool
    extras: tuple[str, ...] = ()


def local_requirement(line: str) -> LocalRequirement | None:
    """The repository folder ``line`` installs, or None when it is no path requirement.

    Raises InvalidInput for a path that leaves the repository or malformed extras.
    """
    match = _LINE.match(line.strip())
    if match is None:
        return None
    raw = match["path"]
    if raw != "." and not raw.startswith("./"):
        raise InvalidInput(_outside(line))
    path = PurePosixPath(raw)
    if ".." in path.parts or "\\" in raw:
        raise InvalidInput(_outside(line))
    extras = tuple(e.strip() for e in (match["extras"] or "[]")[1:-1].split(",") if e.strip())
    for extra in extras:
        if not _EXTRA.fullmatch(extra):
            raise InvalidInput(f"requirement {line!r}: {extra!r} is not an extra's name")
    return LocalRequirement(
        line=line.strip(), path=path.as_posix(), editable=match["flag"] is not None, extras=extras
    )


def _outside(line: str) -> str:
    return (
        f"requirement {line!r} installs a path outside the task's repository; only the "
        "repository itself or a folder in it can be installed from a path: write '.', "
        "'./folder' or '-e ./folder' (relative to the repository's root)"
    )
