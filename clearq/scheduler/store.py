"""The store: one object over one database, grouping every scheduler operation."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from clearq.config import Settings, load_settings
from clearq.errors import StoreError
from clearq.models import Claim, ClaimOrder
from clearq.scheduler.claim import Claimer
from clearq.scheduler.claim_task import claim_task
from clearq.scheduler.cleanup import Cleanup
from clearq.scheduler.engine import Database
from clearq.scheduler.gangs import Gangs
from clearq.scheduler.holds import Holds
from clearq.scheduler.leases import Leases
from clearq.scheduler.migrate import ensure_schema
from clearq.scheduler.model_registry import ModelRegistry
from clearq.scheduler.notify import (
    ENQUEUE_CHANNEL,
    STOP_CHANNEL,
    WORKER_CHANNEL,
    Listener,
    can_listen,
    listen,
)
from clearq.scheduler.outputs import Outputs
from clearq.scheduler.queues import QueueOps
from clearq.scheduler.quotas import Quotas
from clearq.scheduler.reported import Reported
from clearq.scheduler.schedules import ScheduleOps
from clearq.scheduler.task_admin import TaskAdmin
from clearq.scheduler.tasks import TaskRepo
from clearq.scheduler.views import Views
from clearq.scheduler.workers import Workers

if TYPE_CHECKING:
    from clearq import ports


class Store:
    """clearq's state in SQL: tasks, queues, leases, outputs and workers.

    ``Store()`` opens the database from the settings (``CLEARQ_DATABASE_URL``, else
    the SQLite file under ``CLEARQ_HOME``) and creates the schema on an empty database.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        create_schema: bool = True,
    ) -> None:
        self.settings = settings or load_settings()
        self.db = Database(url or self.settings.resolved_database_url, settings=self.settings)
        try:
            ensure_schema(self.db, create_if_empty=create_schema)
        except BaseException:
            self.db.dispose()
            raise
        s = self.settings
        self.tasks = TaskRepo(self.db, max_attempts=s.max_attempts, lease_seconds=s.lease_seconds)
        self.admin = TaskAdmin(self.db, lease_seconds=s.lease_seconds)
        self.queues = QueueOps(self.db)
        self.quotas = Quotas(self.db)
        self.leases = Leases(
            self.db, lease_seconds=s.lease_seconds, worker_gone_seconds=s.worker_gone_seconds
        )
        self.outputs = Outputs(self.db)
        self.reported = Reported(self.db)
        self.registry = ModelRegistry(self.db)
        self.workers = Workers(
            self.db,
            metrics_retention_seconds=s.metrics_retention_seconds,
            live_seconds=s.lease_seconds,
        )
        self.views = Views(self.db)
        self.holds = Holds(self.db)
        self.schedules = ScheduleOps(self.db)
        self.gangs = Gangs(self.db, leases=self.leases, lease_seconds=s.lease_seconds)
        self.cleanup = Cleanup(self.db, leases=self.leases)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self.db.url.render_as_string(hide_password=True)

    @property
    def notifies(self) -> bool:
        """True when idle agents are woken by NOTIFY (PostgreSQL, past any pooler
        through ``CLEARQ_LISTEN_URL``); on SQLite, or behind pgbouncer without a direct
        LISTEN URL, they poll."""
        return can_listen(self.db)

    def claimer(
        self, worker: str, queues: Sequence[str], *, order: ClaimOrder = ClaimOrder.STRICT
    ) -> Claimer:
        """A worker's claimer over its ordered queues."""
        return Claimer(
            self.db,
            worker=worker,
            queues=queues,
            order=order,
            lease_seconds=self.settings.lease_seconds,
        )

    def claim_task(self, worker: str, task_id: uuid.UUID) -> Claim:
        """Claim one named queued task for ``worker`` out of its queue (``clearq task run``)."""
        return claim_task(
            self.db, worker=worker, task_id=task_id, lease_seconds=self.settings.lease_seconds
        )

    def listen(
        self,
        channels: Sequence[str] = (ENQUEUE_CHANNEL, STOP_CHANNEL, WORKER_CHANNEL),
        *,
        on_change: Callable[[StoreError | None], None] | None = None,
    ) -> Listener:
        """Wake-up hints: LISTEN on PostgreSQL, a polling sleep on SQLite.

        The PostgreSQL listener reconnects by itself; ``on_change`` hears it lose its
        connection (the error) and get it back (None).
        """
        return listen(self.db, tuple(channels), on_change=on_change)

    def close(self) -> None:
        """Release every connection."""
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if TYPE_CHECKING:  # mypy proves the store satisfies every consumer's port

    def _ports(
        s: Store,
    ) -> tuple[
        ports.AgentStore,
        ports.OneTaskStore,
        ports.ExecutorStore,
        ports.ControllerStore,
        ports.WorkerAdmin,
        ports.QuotaPort,
        ports.CleanupStore,
        ports.ScheduleStore,
        ports.QueueAdmin,
        ports.FairSharePort,
    ]:
        return (s, s, s, s, s.workers, s.quotas, s, s, s.queues, s.queues)
