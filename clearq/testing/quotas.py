"""The in-memory store's quotas: per-user and per-project limits, as the claim reads them."""

from __future__ import annotations

import builtins

from clearq.models import Quota, QuotaKind, Task, TaskStatus
from clearq.scheduler.quotas import check_quota, missing
from clearq.testing.state import State


def _holder(kind: QuotaKind, task: Task) -> str | None:
    return task.user if kind is QuotaKind.USER else task.project


def quota_use(state: State, quota: Quota) -> Quota:
    """``quota`` with what its user or project holds now (tasks running out of a queue)."""
    running = gpus = 0
    for task in state.tasks.values():
        queue = state.queues.get(task.queue) if task.queue is not None else None
        running_here = task.status is TaskStatus.RUNNING and queue is not None
        if queue is not None and running_here and _holder(quota.kind, task) == quota.name:
            running += task.nodes  # a gang's ranks each count, with the queue's GPUs
            gpus += queue.gpus * task.nodes
    return quota.model_copy(update={"running": running, "gpus": gpus})


def over_quota(state: State, task: Task, gpus: int) -> bool:
    """Whether ``task`` (of a queue with ``gpus`` per task) would pass a quota's limit."""
    for kind in QuotaKind:
        holder = _holder(kind, task)
        quota = None if holder is None else state.quotas.get((kind, holder))
        if quota is None:
            continue
        use = quota_use(state, quota)
        if use.max_running is not None and use.running >= use.max_running:
            return True
        if use.max_gpus is not None and use.gpus + gpus > use.max_gpus:
            return True
    return False


class MemoryQuotas:
    """Per-user and per-project limits on running tasks and GPUs, in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    def set(
        self,
        kind: QuotaKind,
        name: str,
        *,
        max_running: int | None = None,
        max_gpus: int | None = None,
    ) -> Quota:
        """Limit ``name``'s running tasks and GPUs (replacing its quota, if any)."""
        kind = QuotaKind(kind)
        check_quota(name, max_running, max_gpus)
        with self._s.lock:
            quota = Quota(kind=kind, name=name, max_running=max_running, max_gpus=max_gpus)
            self._s.quotas[(kind, name)] = quota
            return quota_use(self._s, quota)

    def clear(self, kind: QuotaKind, name: str) -> None:
        """Lift ``name``'s quota; NotFound when it has none."""
        kind = QuotaKind(kind)
        with self._s.lock:
            if self._s.quotas.pop((kind, name), None) is None:
                raise missing(kind, name)

    def get(self, kind: QuotaKind, name: str) -> Quota:
        """One quota with what it holds now; NotFound when there is none."""
        kind = QuotaKind(kind)
        with self._s.lock:
            quota = self._s.quotas.get((kind, name))
            if quota is None:
                raise missing(kind, name)
            return quota_use(self._s, quota)

    def list(self) -> builtins.list[Quota]:
        """Every quota, users first then projects, by name, with what each holds now."""
        with self._s.lock:
            keys = sorted(self._s.quotas, key=lambda k: (k[0] is not QuotaKind.USER, k[1]))
            return [quota_use(self._s, self._s.quotas[k]) for k in keys]
