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

The store's retention (``CLEARQ_RETENTION_LOGS_DAYS``, ``_METRICS_DAYS``,
``_ARCHIVED_DAYS``) is :func:`apply_retention`, in bounded steps (each one short
transaction: at most ``RETENTION_STEP_ROWS`` rows or ``RETENTION_STEP_TASKS`` tasks), run
by ``clearq gc`` and by the agents themselves: :class:`RetentionTurns`, a thread of every
agent, asks now and then whether it is the fleet's turn-taker (the ``chores`` row, one
winner per ``CLEARQ_RETENTION_EVERY_SECONDS``) and applies it then, keeping its turn
step by step, so 500 agents apply it once an hour between them, not 500 times.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clearq.config import Settings
from clearq.envs.layout import tree_size
from clearq.errors import NotFound, StoreError
from clearq.ports import CleanupPort

__all__ = [
    "Removal",
    "Retained",
    "RetentionTurns",
    "apply_retention",
    "deleted_task_folders",
    "unreferenced_mirrors",
]

log = logging.getLogger(__name__)

DAY_SECONDS = 86400.0
RETENTION_CHORE = "retention"
RETENTION_STEP_ROWS = 5000
"""Log lines, or scalar points and plots, one retention step deletes (one transaction)."""
RETENTION_STEP_TASKS = 500
"""Archived tasks one retention step deletes (one transaction on either database)."""
RETENTION_POLL_SECONDS = 300.0
"""How often, at most, an agent asks whether the retention is due (a one-row read)."""
RETENTION_FIRST_SECONDS = 10.0
"""An agent first asks within this long of starting (at a random moment: a fleet started
at once does not ask at once)."""

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


# ---- the store's retention --------------------------------------------------------------


@dataclass
class Retained:
    """What one application of the retention settings removed."""

    log_lines: int = 0
    scalar_rows: int = 0
    tasks: int = 0
    files: int = 0
    stopped: bool = False
    """It stopped before the end (the agent was stopping, or lost its turn)."""

    def describe(self) -> str:
        """One line for a log."""
        cut = " (stopped before the end; the next turn goes on)" if self.stopped else ""
        return (
            f"removed {self.log_lines} log line(s), {self.scalar_rows} scalar point(s) and "
            f"plot(s) and {self.tasks} long-archived task(s) with {self.files} file(s){cut}"
        )


def retention_is_set(settings: Settings) -> bool:
    """Whether any retention of the store's rows is configured."""
    return any(
        days is not None
        for days in (
            settings.retention_logs_days,
            settings.retention_metrics_days,
            settings.retention_archived_days,
        )
    )


def apply_retention(
    cleanup: CleanupPort,
    settings: Settings,
    *,
    keep_going: Callable[[], bool] = lambda: True,
) -> Retained:
    """Apply the retention settings in bounded steps, asking ``keep_going`` before each.

    Every step is one short transaction, so no lock is held for long whatever the backlog.
    """
    from clearq.sdk.task_files import delete_task_files  # storage clients: only when needed

    done = Retained()

    def steps(purge: Callable[..., int], seconds: float) -> int:
        removed = 0
        while True:
            if not keep_going():
                done.stopped = True
                return removed
            n = purge(seconds, limit=RETENTION_STEP_ROWS)
            removed += n
            if n < RETENTION_STEP_ROWS:
                return removed

    if settings.retention_logs_days is not None:
        done.log_lines = steps(cleanup.purge_logs, settings.retention_logs_days * DAY_SECONDS)
    if settings.retention_metrics_days is not None and not done.stopped:
        seconds = settings.retention_metrics_days * DAY_SECONDS
        done.scalar_rows = steps(cleanup.purge_scalars, seconds)
    if settings.retention_archived_days is None or done.stopped:
        return done
    old = cleanup.archived_before(settings.retention_archived_days * DAY_SECONDS)
    for start in range(0, len(old), RETENTION_STEP_TASKS):
        if not keep_going():
            done.stopped = True
            break
        step = old[start : start + RETENTION_STEP_TASKS]
        try:
            report = cleanup.delete(step)
        except NotFound:  # some were deleted meanwhile by someone else: the rest go
            report = cleanup.delete(sorted(cleanup.existing(step), key=step.index))
        failed = delete_task_files(report.files, report.deleted)
        done.tasks += len(report.deleted)
        done.files += len(report.files) - len(failed)
    return done


class RetentionTurns:
    """An agent's share of the fleet's retention: now and then it asks whether it is its
    turn (``CleanupPort.take_turn``); if so it applies the retention, keeping the turn
    before each step. A thread's body (:meth:`run`), until ``stopping`` is set."""

    def __init__(
        self,
        cleanup: CleanupPort,
        settings: Settings,
        *,
        holder: str,
        stopping: threading.Event,
        say: Callable[[str], None],
    ) -> None:
        self._cleanup = cleanup
        self._settings = settings
        self._holder = holder
        self._stopping = stopping
        self._say = say
        self._every = settings.retention_every_seconds
        self._told_not_mine = False

    @property
    def wanted(self) -> bool:
        """Whether there is anything to apply (no retention set: the thread is not needed)."""
        return retention_is_set(self._settings)

    def run(self) -> None:
        """Ask, and apply when it is this agent's turn, until stopped."""
        poll = min(self._every / 4, RETENTION_POLL_SECONDS)
        wait = random.uniform(0, min(poll, RETENTION_FIRST_SECONDS))  # noqa: S311 - a spread, no secret
        while not self._stopping.wait(wait):
            self.once()
            wait = poll * random.uniform(0.5, 1.5)  # noqa: S311

    def once(self) -> Retained | None:
        """Apply the retention if it is this agent's turn; what it removed (None: not its turn)."""
        try:
            if not self._take(keep=False):
                if not self._told_not_mine:  # once: an operator sees who does it
                    self._told_not_mine = True
                    self._say("retention: another agent's turn (agents take turns applying it)")
                return None
            done = apply_retention(
                self._cleanup,
                self._settings,
                keep_going=lambda: not self._stopping.is_set() and self._take(keep=True),
            )
        except StoreError as e:
            self._say(f"cannot apply the retention settings now: {e}")
            return None
        self._say(f"retention: {done.describe()}")
        return done

    def _take(self, *, keep: bool) -> bool:
        return self._cleanup.take_turn(
            RETENTION_CHORE, self._holder, every_seconds=self._every, keep=keep
        )
