"""An in-memory store with the store's ports, for tests of the logic above the store.

``MemoryStore`` satisfies the same ports as ``clearq.scheduler.Store`` (``clearq.ports``)
and passes the same contract tests (``tests/contract``), so the agent's, the executor's
and the controllers' decisions can be tested in milliseconds, without a database::

    from clearq.testing import MemoryStore

    store = MemoryStore()
    store.queues.create("default")

Time is the store's ``clock`` (``MemoryStore(clock=...)``), so a test can move it past a
lease instead of sleeping. Hints that PostgreSQL would send with NOTIFY are kept in
``store.notices``. Like procrastinate's in-memory connector, it is for tests: nothing is
persisted and nothing is shared between processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from clearq.config import Settings
from clearq.errors import StoreError
from clearq.models import Claim, ClaimOrder
from clearq.testing.admin import MemoryAdmin
from clearq.testing.cleanup import MemoryCleanup
from clearq.testing.queues import MemoryQueues
from clearq.testing.quotas import MemoryQuotas
from clearq.testing.records import MemoryTasks
from clearq.testing.reported import MemoryRegistry, MemoryReported
from clearq.testing.runs import MemoryClaimer, MemoryLeases, MemoryOutputs, claim_task
from clearq.testing.schedules import MemorySchedules
from clearq.testing.state import Clock, State, utc_now
from clearq.testing.workers import MemoryWorkers

if TYPE_CHECKING:
    from clearq.ports import (
        AgentStore,
        CleanupStore,
        ControllerStore,
        ExecutorStore,
        FairSharePort,
        LogSinkStore,
        OneTaskStore,
        QueueAdmin,
        QuotaPort,
        ScheduleStore,
        WorkerAdmin,
    )
    from clearq.runtime.channel import ChannelStore

__all__ = ["ManualClock", "MemoryListener", "MemoryStore"]


class ManualClock:
    """A clock that moves only when told (``advance``): leases expire on demand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


class MemoryListener:
    """Wake-up hints of an in-memory store: there are none to wait for, so it returns."""

    connected = False

    def wait(self, timeout: float) -> list[object]:
        """Return at once: the caller polls the store, as on SQLite."""
        return []

    def wake(self) -> None:
        """Nothing waits."""

    def close(self) -> None:
        """Nothing to release."""


class MemoryStore:
    """clearq's state in memory: tasks, queues, leases, outputs and workers."""

    def __init__(self, *, settings: Settings | None = None, clock: Clock = utc_now) -> None:
        self.settings = settings or Settings()
        self.state = State(clock=clock)
        s = self.settings
        self.tasks = MemoryTasks(
            self.state, max_attempts=s.max_attempts, lease_seconds=s.lease_seconds
        )
        self.admin = MemoryAdmin(self.state)
        self.queues = MemoryQueues(self.state)
        self.quotas = MemoryQuotas(self.state)
        self.leases = MemoryLeases(
            self.state, lease_seconds=s.lease_seconds, worker_gone_seconds=s.worker_gone_seconds
        )
        self.outputs = MemoryOutputs(self.state)
        self.reported = MemoryReported(self.state)
        self.registry = MemoryRegistry(self.state)
        self.workers = MemoryWorkers(self.state, live_seconds=s.lease_seconds)
        self.cleanup = MemoryCleanup(self.state, leases=self.leases)
        self.schedules = MemorySchedules(self.state, max_attempts=s.max_attempts)

    @property
    def notices(self) -> list[tuple[str, str]]:
        """The (channel, payload) hints a PostgreSQL store would have sent, oldest first."""
        return list(self.state.notices)

    @property
    def notifies(self) -> bool:
        """False: idle agents poll an in-memory store."""
        return False

    def claimer(
        self, worker: str, queues: Sequence[str], *, order: ClaimOrder = ClaimOrder.STRICT
    ) -> MemoryClaimer:
        """A worker's claimer over its ordered queues."""
        return MemoryClaimer(self.state, worker, queues, order, self.settings.lease_seconds)

    def claim_task(self, worker: str, task_id: uuid.UUID) -> Claim:
        """Claim one named queued task for ``worker`` out of its queue (``clearq task run``)."""
        return claim_task(self.state, worker, task_id, self.settings.lease_seconds)

    def listen(
        self,
        channels: Sequence[str] = (),
        *,
        on_change: Callable[[StoreError | None], None] | None = None,
    ) -> MemoryListener:
        """A listener that never blocks and never loses its connection: agents poll."""
        return MemoryListener()

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if TYPE_CHECKING:  # mypy proves the twin satisfies the ports the real store does

    def _ports(
        s: MemoryStore,
    ) -> tuple[
        AgentStore,
        ExecutorStore,
        LogSinkStore,
        ControllerStore,
        WorkerAdmin,
        QuotaPort,
        CleanupStore,
        ScheduleStore,
        QueueAdmin,
        OneTaskStore,
        FairSharePort,
        ChannelStore,
    ]:
        return (s, s, s, s, s.workers, s.quotas, s, s, s.queues, s, s.queues, s)
