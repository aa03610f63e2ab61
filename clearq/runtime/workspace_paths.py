"""The paths and files of a workspace: nothing a Script names may land outside it.

Every failure of building a workspace is a WorkspaceError naming its step::

    ClearqError
    └── WorkspaceError    step: paths, clone, fetch, checkout, diff, untracked, source
"""

from __future__ import annotations

import enum
import os
import re
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from clearq.errors import ClearqError

__all__ = [
    "WorkspaceError",
    "WorkspaceStep",
    "check_commit",
    "checked_path",
    "ensure_folder",
    "write_file",
]

_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")


class WorkspaceStep(enum.StrEnum):
    """The step of building a workspace that failed."""

    PATHS = "paths"
    CLONE = "clone"
    FETCH = "fetch"
    CHECKOUT = "checkout"
    DIFF = "diff"
    UNTRACKED = "untracked"
    SOURCE = "source"


class WorkspaceError(ClearqError):
    """A task's code could not be rebuilt; ``step`` says where, ``git_output`` what git said.

    ``infra``: the machine's fault, not the task's (a mirror another process on this host
    holds too long); the agent requeues such a task instead of failing it.
    """

    def __init__(
        self, step: WorkspaceStep, message: str, *, git_output: str = "", infra: bool = False
    ) -> None:
        self.step = step
        self.infra = infra
        self.detail = message
        """The message without the step's prefix."""
        self.git_output = git_output
        text = f"workspace {step.value} failed: {message}"
        super().__init__(f"{text}\ngit said: {git_output}" if git_output else text)


def checked_path(value: str, *, what: str, allow_root: bool = False) -> PurePosixPath:
    """``value`` as a relative path that stays inside the folder it is joined to.

    Raises WorkspaceError (step ``paths``) for an absolute path, a ``..`` component, a
    ``.git`` component, a backslash or NUL, or (unless ``allow_root``) an empty path.
    """
    reason = _unsafe(value, allow_root=allow_root)
    if reason is not None:
        raise WorkspaceError(WorkspaceStep.PATHS, f"{what} {value!r} {reason}: refused")
    return PurePosixPath(value)


def check_commit(value: str) -> None:
    """Raise WorkspaceError (step ``paths``) unless ``value`` is a commit hash."""
    if not _COMMIT.fullmatch(value):
        raise WorkspaceError(WorkspaceStep.PATHS, f"commit {value!r} is not a hash")


def _unsafe(value: str, *, allow_root: bool) -> str | None:
    if "\0" in value or "\\" in value:
        return "contains a NUL or a backslash"
    path = PurePosixPath(value)
    if path.is_absolute() or PureWindowsPath(value).drive:
        return "is absolute"
    if ".." in path.parts:
        return "has a '..' component"
    if any(part.lower() == ".git" for part in path.parts):
        return "is inside .git"
    if not path.parts and not allow_root:
        return "is empty"
    return None


def write_file(
    dest: Path, path: PurePosixPath, data: bytes, *, executable: bool, step: WorkspaceStep
) -> None:
    """Write ``dest/path`` without following a symbolic link anywhere on the way."""
    folder = dest
    for part in path.parts[:-1]:
        folder = folder / part
        ensure_folder(folder, dest, step=step)
    mode = 0o755 if executable else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        fd = os.open(folder / path.name, flags, mode)
        with open(fd, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), mode)
    except OSError as error:
        raise WorkspaceError(step, f"cannot write {path} ({error.strerror}): refused") from error


def ensure_folder(folder: Path, dest: Path, *, step: WorkspaceStep) -> None:
    """Make ``folder`` if missing; refuse one that is a symbolic link or a file."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir()
        return
    where = folder.relative_to(dest).as_posix()
    if stat.S_ISLNK(info.st_mode):
        raise WorkspaceError(step, f"{where} is a symbolic link: nothing is written through it")
    if not stat.S_ISDIR(info.st_mode):
        raise WorkspaceError(step, f"{where} is a file where a folder is needed")
