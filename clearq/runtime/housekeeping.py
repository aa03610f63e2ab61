"""What ``clearq gc`` removes from a machine's clearq home: what nothing references.

- **Git mirrors** (``home/git-mirrors/*.git``) whose origin URL no stored task runs from
  and that no clone used for ``retention_mirrors_days``. Both must hold: a submodule's
  mirror, or one under a URL the agent rewrote (``CLEARQ_GIT_PREFER``), is named by no
  task's ``repository`` but stays while clones use it. A mirror whose lock another process
  holds is left alone.
- **Task folders of deleted tasks** under the local artifacts root
  (``home/artifacts/<task id>/``: artifacts, debug samples, models' weights): a folder
  named by a task id the store no longer has. Files a task wrote elsewhere (its own
  ``output_uri``, remote storage) are removed when the task is deleted, not here.

Built environments are the env cache's own (``EnvCache.evict_unused_for``). Every
function takes ``dry_run`` and returns what it removed, or would remove, with its size.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clearq.envs.layout import tree_size

__all__ = ["Removal", "deleted_task_folders", "unreferenced_mirrors"]

MIRRORS_DIRNAME = "git-mirrors"
_ORIGIN_URL = re.compile(r'^\[remote "origin"\]\s*$\n(?:^\s+.*$\n)*?^\s+url = (.*)$', re.M)


@dataclass(frozen=True)
class Removal:
    """One thing gc removed (or, on a dry run, would remove)."""

    kind: str
    path: Path
    size_bytes: int
    why: str


def unreferenced_mirrors(
    root: Path,
    referenced: Iterable[str],
    *,
    unused_seconds: float,
    dry_run: bool = False,
) -> list[Removal]:
    """Mirrors under ``root`` that no URL in ``referenced`` names and no clone used lately."""
    named = set(referenced)
    cutoff = time.time() - unused_seconds
    found: list[Removal] = []
    for mirror in sorted(root.glob("*.git")) if root.is_dir() else ():
        url = _origin_url(mirror)
        if url is None or url in named or _last_used(mirror) >= cutoff:
            continue
        size = tree_size(mirror)
        if dry_run or _remove_unlocked(mirror):
            found.append(Removal("git mirror", mirror, size, f"no task runs from {url}"))
    return found


def deleted_task_folders(
    root: Path,
    existing: Callable[[list[uuid.UUID]], set[uuid.UUID]],
    *,
    dry_run: bool = False,
) -> list[Removal]:
    """Folders under ``root`` named by a task id that ``existing`` says is gone."""
    folders: dict[uuid.UUID, Path] = {}
    for path in root.iterdir() if root.is_dir() else ():
        task_id = _as_task_id(path.name)
        if task_id is not None and path.is_dir() and not path.is_symlink():
            folders[task_id] = path
    alive = existing(list(folders))
    found: list[Removal] = []
    for task_id, path in sorted(folders.items(), key=lambda kv: kv[1].name):
        if task_id in alive:
            continue
        size = tree_size(path)
        if not dry_run:
            shutil.rmtree(path)
        found.append(Removal("task files", path, size, f"no task {task_id} in the store"))
    return found


def _as_task_id(name: str) -> uuid.UUID | None:
    try:
        parsed = uuid.UUID(name)
    except ValueError:
        return None
    return parsed if str(parsed) == name else None  # the form clearq writes, nothing else


def _origin_url(mirror: Path) -> str | None:
    try:
        text = (mirror / "config").read_text()
    except OSError:
        return None
    match = _ORIGIN_URL.search(text)
    return match.group(1).strip() if match else None


def _last_used(mirror: Path) -> float:
    """Every clone rewrites the mirror's config first: its mtime is the last use."""
    newest = 0.0
    for name in ("config", "FETCH_HEAD"):
        try:
            newest = max(newest, (mirror / name).stat().st_mtime)
        except OSError:
            continue
    return newest


def _remove_unlocked(mirror: Path) -> bool:
    """Remove ``mirror`` under its lock, if no one holds it; True when it went."""
    lock = mirror.with_name(mirror.name + ".lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            # Renamed aside first: a clone never sees half a mirror.
            doomed = mirror.with_name(f"{mirror.name}.gc.{os.getpid()}")
            mirror.rename(doomed)
            shutil.rmtree(doomed)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    # The lock file stays: a clone waiting on it holds that file, not a new one.
    return True
