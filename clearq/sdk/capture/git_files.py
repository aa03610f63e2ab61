"""Untracked files for capture: which travel, read safely, and fitted under the size limit."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearq.sdk.capture.gitcmd import git_out

__all__ = ["Candidate", "File", "candidate", "fit", "read_file", "untracked"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    """An untracked file that may travel: where it is, its size and executable bit."""

    path: str
    full: Path
    size: int
    executable: bool


@dataclass(frozen=True)
class File:
    """An untracked (or carried whole) file's content."""

    path: str
    data: bytes
    executable: bool

    def fields(self) -> dict[str, Any]:
        """The stored form of ``models.UntrackedFile`` (bytes as URL-safe base64)."""
        data = base64.urlsafe_b64encode(self.data).decode("ascii")
        return {"path": self.path, "data": data, "executable": self.executable}


def untracked(root: Path, entry_point: str | None, warnings: list[str]) -> list[Candidate]:
    """The untracked files git does not ignore in ``root``, and ``entry_point`` if ignored."""
    names = git_out(root, "ls-files", "--others", "--exclude-standard", "-z").split(b"\0")
    names = [name for name in names if name]
    if entry_point is None:
        return [c for name in names if (c := candidate(root, name, warnings)) is not None]
    entry_name = os.fsencode(entry_point)
    tracked = git_out(root, "ls-files", "--cached", "-z", "--", f":(literal){entry_point}")
    if not tracked and entry_name not in names:
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
