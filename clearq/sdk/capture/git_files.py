"""Untracked files for capture: which travel, read safely, and fitted under the size limit."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

from clearq.sdk.capture.gitcmd import git_out
from clearq.valueclass import value_class

__all__ = [
    "STATUS",
    "Candidate",
    "File",
    "Status",
    "candidate",
    "fit",
    "parse_status",
    "read_file",
    "status",
    "untracked",
]

_MIB = 1024 * 1024


@value_class
class Candidate:
    """An untracked file that may travel: where it is, its size and executable bit."""

    path: str
    full: Path
    size: int
    executable: bool


@value_class
class File:
    """An untracked (or carried whole) file's content."""

    path: str
    data: bytes
    executable: bool

    def fields(self) -> dict[str, Any]:
        """The stored form of ``models.UntrackedFile`` (bytes as URL-safe base64)."""
        data = base64.urlsafe_b64encode(self.data).decode("ascii")
        return {"path": self.path, "data": data, "executable": self.executable}


class Status:
    """What one ``git status --porcelain=v2`` says of a working tree: its HEAD commit and
    branch, its untracked files and its ignored paths (an ignored folder once, as
    ``dir/``). One git process instead of the five that asked for each of these."""

    __slots__ = ("ahead", "branch", "head", "ignored", "untracked", "upstream")

    def __init__(
        self,
        head: str | None,
        branch: str | None,
        untracked: list[bytes],
        ignored: list[bytes],
        upstream: str | None = None,
        ahead: int | None = None,
    ) -> None:
        self.head = head
        """HEAD's commit; None before the first one."""
        self.branch = branch
        """The checked-out branch's short name; None when HEAD is detached."""
        self.untracked = untracked
        self.ignored = ignored
        self.upstream = upstream
        """The branch's upstream as git names it (``origin/main``), when it has one."""
        self.ahead = ahead
        """Commits of HEAD not on the upstream, when the upstream's commit is here."""

    def is_ignored(self, path: str) -> bool:
        """Whether git ignores ``path`` (itself, or a folder above it)."""
        name = os.fsencode(path)
        return any(name == i or (i.endswith(b"/") and name.startswith(i)) for i in self.ignored)


STATUS = (
    *("status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all"),
    # Submodules are captured on their own; ignored folders are named, not walked.
    *("--ignored=matching", "--ignore-submodules=all", "--no-renames"),
)
"""The status command; its paths are the repository's whatever folder of it git runs in."""


def status(root: Path) -> Status:
    """``git status`` of ``root``'s working tree, read once."""
    return parse_status(git_out(root, *STATUS))


def parse_status(output: bytes) -> Status:
    """What the output of :data:`STATUS` says."""
    fields = output.split(b"\0")
    head: str | None = None
    branch: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    found: dict[bytes, list[bytes]] = {b"?": [], b"!": []}
    skip = False
    for field in fields:
        if skip:  # a rename's or copy's original path (none with --no-renames; to be safe)
            skip = False
        elif field.startswith(b"# branch.oid "):
            oid = field[len(b"# branch.oid ") :].decode()
            head = None if oid == "(initial)" else oid
        elif field.startswith(b"# branch.head "):
            name = os.fsdecode(field[len(b"# branch.head ") :])
            branch = None if name == "(detached)" else name
        elif field.startswith(b"# branch.upstream "):
            upstream = os.fsdecode(field[len(b"# branch.upstream ") :])
        elif field.startswith(b"# branch.ab +"):
            ahead = int(field[len(b"# branch.ab +") :].split(b" ")[0])
        elif field[:2] in (b"? ", b"! "):
            found[field[:1]].append(field[2:])
        elif field.startswith(b"2 "):
            skip = True
    return Status(head, branch, found[b"?"], found[b"!"], upstream, ahead)


def untracked(
    root: Path, entry_point: str | None, warnings: list[str], tree: Status | None = None
) -> list[Candidate]:
    """The untracked files git does not ignore in ``root``, and ``entry_point`` if ignored."""
    tree = status(root) if tree is None else tree
    names = list(tree.untracked)
    if entry_point is None:
        return [c for name in names if (c := candidate(root, name, warnings)) is not None]
    entry_name = os.fsencode(entry_point)
    if entry_name not in names and tree.is_ignored(entry_point):
        warnings.append(f"the entry point {entry_point} is ignored by git: captured it anyway")
        names.append(entry_name)
    return [c for name in names if (c := candidate(root, name, warnings)) is not None]


def candidate(root: Path, name: bytes, warnings: list[str]) -> Candidate | None:
    """An untracked file fit to capture, or None with a warning saying why not."""
    try:
        path = name.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"untracked {name!r} has a name that is not UTF-8: not captured")
        return None
    if path.endswith("/"):
        warnings.append(f"untracked {path} is a nested git repository: not captured")
        return None
    full = root / path
    try:
        info = os.lstat(full)
    except OSError as error:
        warnings.append(f"untracked {path} cannot be read ({error}): not captured")
        return None
    reason = _refusal(root, full, info)
    if reason is not None:
        warnings.append(f"untracked {path} {reason}: not captured")
        return None
    return Candidate(path, full, info.st_size, bool(info.st_mode & stat.S_IXUSR))


def _refusal(root: Path, full: Path, info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if not full.resolve().is_relative_to(root):
        return "resolves outside the repository"
    return None


def read_file(candidate: Candidate | None, warnings: list[str]) -> File | None:
    if candidate is None:
        return None
    try:
        # O_NOFOLLOW: a file swapped for a link since it was listed is not followed out.
        fd = os.open(candidate.full, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as file:
            data = file.read()
    except OSError as error:
        warnings.append(f"untracked {candidate.path} cannot be read ({error}): not captured")
        return None
    return File(candidate.path, data, candidate.executable)


def fit(
    diff_size: int, candidates: list[Candidate], limit: int, warnings: list[str]
) -> tuple[list[Candidate], list[Candidate]]:
    """The untracked files to keep under ``limit``, and those dropped, largest first."""
    total = diff_size + sum(c.size for c in candidates)
    if total <= limit:
        return candidates, []
    by_size = sorted(candidates, key=lambda c: c.size, reverse=True)
    dropped: list[Candidate] = []
    while by_size and diff_size + sum(c.size for c in by_size) > limit:
        dropped.append(by_size.pop(0))
    warnings.append(_over_limit_warning(total, diff_size, limit, dropped))
    gone = {c.path for c in dropped}
    return [c for c in candidates if c.path not in gone], dropped


def _over_limit_warning(total: int, diff_size: int, limit: int, dropped: list[Candidate]) -> str:
    text = (
        f"captured code is {_mib(total)}, over the limit of {_mib(limit)} "
        "(max_diff_bytes, CLEARQ_MAX_DIFF_BYTES)"
    )
    if dropped:
        names = ", ".join(f"{c.path} ({_mib(c.size)})" for c in dropped)
        text += (
            f": left out {len(dropped)} untracked file(s), largest first: {names}; the "
            "agent's working tree will lack them (commit them, ignore them, or raise the limit)"
        )
    if diff_size > limit:
        text += (
            f"; the diff alone is {_mib(diff_size)} and is kept whole "
            "(commit and push to shrink it)"
        )
    return text


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f} MiB" if size >= _MIB // 10 else f"{size} bytes"
