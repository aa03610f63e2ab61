"""The in-memory store's cleanup (``ports.CleanupPort``): archive, delete, retention."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from clearq.errors import InvalidInput, NotFound
from clearq.models import FINAL_STATUSES, DeletedTasks, Task, TaskFilter, TaskStatus
from clearq.scheduler.cleanup import running_refusal
from clearq.testing.reported import forget_results, result_files
from clearq.testing.runs import MemoryLeases
from clearq.testing.state import State

_Row = TypeVar("_Row", bound=Any)


class MemoryCleanup:
    """Archive, delete and retention over many tasks, in memory."""

    def __init__(self, state: State, *, leases: MemoryLeases) -> None:
        self._s = state
        self._leases = leases

    def select(self, where: TaskFilter, *, limit: int | None = None) -> list[uuid.UUID]:
        """The ids of the tasks ``where`` picks, oldest first."""
        s = self._s
        with s.lock:
            picked = [t for t in s.tasks.values() if self._matches(t, where)]
            picked.sort(key=lambda t: (t.created_at, s.created_order[t.id]))
        ids = [t.id for t in picked]
        return ids if limit is None else ids[:limit]

    def _matches(self, task: Task, where: TaskFilter) -> bool:
        if where.ended_before_seconds is not None:
            ended = task.finished_at or task.created_at
            if not ended < self._s.now() - timedelta(seconds=where.ended_before_seconds):
                return False
        return (
            (where.project is None or task.project == where.project)
            and (not where.statuses or task.status in where.statuses)
            and (where.user is None or task.user == where.user)
            and (where.archived is None or task.archived is where.archived)
            and set(where.tags) <= set(task.tags)
        )

    def archive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Archive the tasks; how many were not archived before."""
        return self._set_archived(task_ids, archived=True)

    def unarchive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Bring archived tasks back into the default lists; how many changed."""
        return self._set_archived(task_ids, archived=False)

    def _set_archived(self, task_ids: Sequence[uuid.UUID], *, archived: bool) -> int:
        s = self._s
        with s.lock:
            self._check_exist(task_ids)
            changed = [t for t in dict.fromkeys(task_ids) if s.tasks[t].archived is not archived]
            for task_id in changed:
                task = s.tasks[task_id]
                # Archiving is no change of the task itself: updated_at stays.
                s.tasks[task_id] = task.model_copy(
                    update={"archived_at": s.now() if archived else None}
                )
            return len(changed)

    def delete(self, task_ids: Sequence[uuid.UUID], *, force: bool = False) -> DeletedTasks:
        """Delete the tasks and what names them; running ones only with ``force``."""
        s = self._s
        with s.lock:
            running = self._check_exist(task_ids)
            if running and not force:
                raise running_refusal(running)
            for task_id in running:
                self._leases.request_stop(task_id, reason="deleted", force=True)
            gone = set(task_ids)
            files = [a.uri for (t, _), a in s.artifacts.items() if t in gone]
            files += result_files(s, gone)
            self._forget(gone)
            return DeletedTasks(deleted=tuple(dict.fromkeys(task_ids)), files=tuple(files))

    def _forget(self, gone: set[uuid.UUID]) -> None:
        s = self._s
        for task_id in gone:
            del s.tasks[task_id]
            s.created_order.pop(task_id, None)
            s.entries.pop(task_id, None)
            s.parents.pop(task_id, None)
        for edges in s.parents.values():
            for parent in gone & set(edges):
                del edges[parent]
        for task in list(s.tasks.values()):
            if task.parent_id in gone:
                s.tasks[task.id] = task.model_copy(update={"parent_id": None})
        s.logs = [(t, line) for t, line in s.logs if t not in gone]
        s.scalars = [row for row in s.scalars if row[0] not in gone]
        s.summary = {k: v for k, v in s.summary.items() if k[0] not in gone}
        s.artifacts = {k: v for k, v in s.artifacts.items() if k[0] not in gone}
        forget_results(s, gone)

    def _check_exist(self, task_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        missing = [t for t in dict.fromkeys(task_ids) if t not in self._s.tasks]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(
                f"no task with id {missing[0]}{more}: nothing was changed; "
                "check the ids with `clearq task list`"
            )
        return [t for t in dict.fromkeys(task_ids) if self._s.tasks[t].status is TaskStatus.RUNNING]

    def existing(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``task_ids`` that are tasks."""
        with self._s.lock:
            return {t for t in task_ids if t in self._s.tasks}

    def repositories(self) -> set[str]:
        """Every repository URL a stored task runs from."""
        with self._s.lock:
            return {t.script.repository for t in self._s.tasks.values() if t.script.repository}

    # ---- retention ----------------------------------------------------------------------

    def _ended_before(self, seconds: float) -> tuple[set[uuid.UUID], datetime]:
        if not seconds > 0:
            raise InvalidInput(f"a retention must be above 0 seconds, not {seconds}")
        ended = {t.id for t in self._s.tasks.values() if t.status in FINAL_STATUSES}
        return ended, self._s.now() - timedelta(seconds=seconds)

    def count_old_logs(self, older_than_seconds: float) -> int:
        """Log lines of ended tasks older than ``older_than_seconds``."""
        with self._s.lock:
            ended, cutoff = self._ended_before(older_than_seconds)
            return sum(1 for t, line in self._s.logs if t in ended and line.at < cutoff)

    def count_old_scalars(self, older_than_seconds: float) -> int:
        """Scalar points of ended tasks older than ``older_than_seconds``."""
        with self._s.lock:
            ended, cutoff = self._ended_before(older_than_seconds)
            return sum(1 for row in self._s.scalars if row[0] in ended and row[3] < cutoff)

    def purge_logs(self, older_than_seconds: float, *, limit: int | None = None) -> int:
        """Delete log lines of ended tasks older than ``older_than_seconds`` (at most
        ``limit``); how many."""
        s = self._s
        with s.lock:
            ended, cutoff = self._ended_before(older_than_seconds)
            s.logs, removed = _dropped(s.logs, lambda r: r[0] in ended and r[1].at < cutoff, limit)
            return removed

    def purge_scalars(self, older_than_seconds: float, *, limit: int | None = None) -> int:
        """Delete scalar points of ended tasks older than that, at most ``limit`` (the
        summary stays)."""
        s = self._s
        with s.lock:
            ended, cutoff = self._ended_before(older_than_seconds)
            s.scalars, removed = _dropped(
                s.scalars, lambda r: r[0] in ended and r[3] < cutoff, limit
            )
            return removed

    def take_turn(
        self, chore: str, holder: str, *, every_seconds: float, keep: bool = False
    ) -> bool:
        """True when ``holder`` is the one to run ``chore`` now (``keep``: still is)."""
        s = self._s
        with s.lock:
            next_at, held_by = s.chores.get(chore, (None, None))
            due = held_by == holder if keep else next_at is None or next_at <= s.now()
            if due:
                s.chores[chore] = (s.now() + timedelta(seconds=every_seconds), holder)
            return due

    def archived_before(self, seconds: float) -> list[uuid.UUID]:
        """Tasks archived more than ``seconds`` ago and not running."""
        if not seconds > 0:
            raise InvalidInput(f"a retention must be above 0 seconds, not {seconds}")
        s = self._s
        with s.lock:
            cutoff = s.now() - timedelta(seconds=seconds)
            old = [
                t
                for t in s.tasks.values()
                if t.archived_at is not None
                and t.archived_at < cutoff
                and t.status is not TaskStatus.RUNNING
            ]
            return [t.id for t in sorted(old, key=lambda t: t.archived_at or cutoff)]


def _dropped(
    rows: list[_Row], old: Callable[[_Row], bool], limit: int | None
) -> tuple[list[_Row], int]:
    """``rows`` without the first ``limit`` (all, if None) that ``old`` picks; how many went."""
    kept: list[_Row] = []
    removed = 0
    for row in rows:
        if old(row) and (limit is None or removed < limit):
            removed += 1
        else:
            kept.append(row)
    return kept, removed
