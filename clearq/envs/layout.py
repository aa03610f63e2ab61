"""Where the env cache keeps things, and the small file operations on them.

::

    <root>/<key>/              a complete environment (bin/python, ...), with
    <root>/<key>/.clearq-env.json   its record, written last: no record, not complete
    <root>/.locks/<key>.lock   held (exclusive) while the entry is built, looked up or evicted
    <root>/.locks/<key>.use    held shared by every user of the entry; its mtime: last use
    <root>/.tmp/<key>.<rand>/  a build in progress (renamed to <root>/<key> when complete)
    <root>/.trash/             entries on their way out
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECORD_NAME", "CacheEntry", "CacheLayout", "hardlink_clone", "tree_size"]

RECORD_NAME = ".clearq-env.json"


@dataclass(frozen=True)
class CacheEntry:
    """A complete environment in the cache."""

    key: str
    path: Path
    size_bytes: int
    build_seconds: float
    built_at: float
    last_used: float
    """Seconds since the epoch of the entry's latest use (its build, if never used)."""


@dataclass(frozen=True)
class CacheLayout:
    """The paths of an env cache rooted at ``root``."""

    root: Path

    def entry(self, key: str) -> Path:
        """The folder of the environment ``key``."""
        return self.root / key

    def build_lock(self, key: str) -> Path:
        """The lock held while ``key`` is built, looked up or evicted."""
        return self.root / ".locks" / f"{key}.lock"

    def use_file(self, key: str) -> Path:
        """The file held shared by the users of ``key``."""
        return self.root / ".locks" / f"{key}.use"

    @property
    def tmp(self) -> Path:
        """Where builds happen before they are renamed into place."""
        return self.root / ".tmp"

    @property
    def trash(self) -> Path:
        """Where entries go to be deleted."""
        return self.root / ".trash"

    def prepare(self) -> None:
        """Create the cache's folders."""
        for folder in (self.root / ".locks", self.tmp, self.trash):
            folder.mkdir(parents=True, exist_ok=True)

    def record(self, key: str) -> dict[str, Any] | None:
        """The record of a complete entry ``key``, or None when it is absent or unfinished."""
        try:
            data: dict[str, Any] = json.loads((self.entry(key) / RECORD_NAME).read_text())
        except (OSError, ValueError):
            return None
        return data

    def write_record(self, env: Path, key: str, build_seconds: float) -> None:
        """Mark the environment in ``env`` complete (the last write of a build)."""
        record = {
            "key": key,
            "size_bytes": tree_size(env),
            "build_seconds": build_seconds,
            "built_at": time.time(),
        }
        path = env / RECORD_NAME
        path.with_suffix(".tmp").write_text(json.dumps(record))
        os.replace(path.with_suffix(".tmp"), path)

    def entries(self) -> list[CacheEntry]:
        """Every complete entry, least recently used first."""
        found = []
        for path in self.root.iterdir() if self.root.is_dir() else ():
            if path.name.startswith(".") or not path.is_dir():
                continue
            record = self.record(path.name)
            if record is None:
                continue
            built_at = float(record.get("built_at", 0.0))
            found.append(
                CacheEntry(
                    key=path.name,
                    path=path,
                    size_bytes=int(record.get("size_bytes", 0)),
                    build_seconds=float(record.get("build_seconds", 0.0)),
                    built_at=built_at,
                    last_used=max(built_at, _mtime(self.use_file(path.name))),
                )
            )
        return sorted(found, key=lambda e: (e.last_used, e.key))

    def discard(self, path: Path) -> None:
        """Move ``path`` out of the way in one rename, then delete it."""
        doomed = self.trash / f"{path.name}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            path.rename(doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def empty_trash(self) -> None:
        """Delete whatever an interrupted discard left in the trash."""
        for path in self.trash.iterdir() if self.trash.is_dir() else ():
            shutil.rmtree(path, ignore_errors=True)


def tree_size(root: Path) -> int:
    """Bytes of the files under ``root``, each file (inode) counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def hardlink_clone(source: Path, dest: Path) -> None:
    """A copy of the tree ``source`` at ``dest`` whose files are hard links.

    Files are shared, not copied: a file replaced in the clone (as installers do) leaves
    the source alone, but a file written in place changes both. Symbolic links are
    copied as links. Falls back to copying across file systems.
    """
    shutil.copytree(source, dest, symlinks=True, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
