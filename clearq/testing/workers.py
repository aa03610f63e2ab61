"""The in-memory store's workers: registrations, operators' commands, metrics."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from clearq.errors import NotFound
from clearq.models import TaskStatus, WorkerCommand, WorkerInfo, WorkerMetrics, WorkerState
from clearq.scheduler.notify import WORKER_CHANNEL
from clearq.scheduler.workers import pick_workers, strongest
from clearq.testing.state import State


class MemoryWorkers:
    """Registered workers and their metrics, in memory."""

    def __init__(self, state: State, *, live_seconds: float) -> None:
        self._s = state
        self._live = live_seconds

    def serving(self, queue: str) -> builtins.list[WorkerInfo]:
        """The live workers of ``queue``: active and heard from within ``live_seconds``."""
        since = self._s.now() - timedelta(seconds=self._live)
        return [
            w for w in self.list(include_gone=False) if queue in w.queues and w.last_seen >= since
        ]

    def register(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int | None,
        queues: Sequence[str],
        gpus: Sequence[str] = (),
        windows: dict[str, Any] | None = None,
    ) -> WorkerInfo:
        """Register (or re-register) a worker as active now."""
        with self._s.lock:
            now = self._s.now()
            self._s.workers[worker_id] = WorkerInfo(
                id=worker_id,
                host=host,
                pid=pid,
                queues=tuple(queues),
                gpus=tuple(gpus),
                state=WorkerState.ACTIVE,
                started_at=now,
                last_seen=now,
                windows=windows,
            )
        return self.get(worker_id)

    def unregister(self, worker_id: str) -> None:
        """Remove a worker that is shutting down."""
        with self._s.lock:
            self._s.workers.pop(worker_id, None)

    def command(self, worker_ids: Sequence[str]) -> WorkerCommand | None:
        """What an operator asked of these workers (one agent's): drain wins over pause."""
        with self._s.lock:
            found = [self._s.workers[w].command for w in worker_ids if w in self._s.workers]
        return strongest(c for c in found if c is not None)

    def set_command(self, name: str, command: WorkerCommand | None) -> builtins.list[str]:
        """Drain, pause or (None) resume the workers ``name`` names; their ids."""
        with self._s.lock:
            ids = pick_workers(name, self._s.workers)
            for worker_id in ids:
                info = self._s.workers[worker_id]
                self._s.workers[worker_id] = info.model_copy(update={"command": command})
                self._s.notices.append((WORKER_CHANNEL, worker_id))
        return ids

    def get(self, worker_id: str) -> WorkerInfo:
        """One worker with the tasks it runs; NotFound when it is not registered."""
        with self._s.lock:
            info = self._s.workers.get(worker_id)
            if info is None:
                raise NotFound(f"no worker {worker_id!r} is registered: see `clearq workers`")
            running = sorted(
                (t for t in self._s.tasks.values() if t.status is TaskStatus.RUNNING),
                key=lambda t: t.started_at or t.created_at,
            )
            mine = tuple(t.id for t in running if t.worker == worker_id)
        return info.model_copy(update={"tasks": mine})

    def list(self, *, include_gone: bool = True) -> builtins.list[WorkerInfo]:
        """Registered workers by id."""
        with self._s.lock:
            ids = sorted(
                w
                for w, info in self._s.workers.items()
                if include_gone or info.state is WorkerState.ACTIVE
            )
        return [self.get(w) for w in ids]

    def record_metrics(
        self, worker_id: str, metrics: WorkerMetrics, *, seen: Sequence[str] = ()
    ) -> None:
        """Store one sample of the machine's health; mark ``seen`` workers seen."""
        with self._s.lock:
            self._s.mark_seen(seen)
            self._s.metrics.append((worker_id, self._s.now(), metrics))
