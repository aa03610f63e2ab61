"""Real git repositories for tests: a working clone whose origin is a local bare repo."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``, failing loudly; its output, stripped."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@dataclass(frozen=True)
class Published:
    """A repository pushed to its origin: where each is, and the commit pushed."""

    origin: Path
    work: Path
    commit: str


def published(root: Path, files: Mapping[str, str], *, message: str = "files") -> Published:
    """``root/work``, a clone of the bare ``root/origin.git``, holding ``files``, pushed."""
    origin, work = root / "origin.git", root / "work"
    git(root, "init", "-q", "--bare", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    for name, text in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(work, "add", ".")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    git(work, "push", "-q", "origin", "HEAD")
    return Published(origin=origin, work=work, commit=git(work, "rev-parse", "HEAD"))
