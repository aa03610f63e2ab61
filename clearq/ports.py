"""The store's ports: what each consumer of the store uses of it, as small typed Protocols.

The agent, the executor, the log sink and the pipeline / HPO controllers each take the
port that says what they use, never the concrete ``Store``. Two implementations satisfy
them: ``clearq.scheduler.Store`` (SQLAlchemy, on SQLite or PostgreSQL) and
``clearq.testing.MemoryStore`` (in memory, for tests of the logic above the store); both
pass the same contract tests (``tests/contract``).

::

    AgentStore       tasks: TaskReads, queues: QueueReads, leases: LeasePort,
                     workers: WorkerPort, claimer(), listen(), notifies, settings
    WorkerAdmin      list workers; drain, pause, resume them
    QueueAdmin       describe queues, move their entries
    OneTaskStore     an AgentStore that can claim one named task (claim_task)
    ExecutorStore    tasks: TaskRecords, outputs: OutputWrites
    GangPort         join, wait, leave, beat and complete the ranks of gang tasks
    LogSinkStore     outputs: OutputWrites
    ControllerStore  tasks: ControllerTasks, queues: QueueActions, outputs: OutputReads,
                     admin: SkipPort
    QuotaPort        per-user and per-project limits on running tasks and GPUs
    CleanupStore     tasks: TaskReads, cleanup: CleanupPort (archive, delete, retention)
    ScheduleStore    schedules: SchedulePort (schedules and triggers: add, list, remove)
    FairSharePort    sharing a queue's turns by user or by project

Plain names only (models and settings): nothing here imports the scheduler, so
``clearq.automation`` can be typed against these ports without depending on it.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from clearq.config import Settings
from clearq.errors import StoreError
from clearq.models import (
    Claim,
    ClaimOrder,
    Container,
    DeletedTasks,
    EnvSpec,
    FairShare,
    Fence,
    GangJoin,
    GangMembership,
    Heartbeat,
    LogLine,
    QueueInfo,
    Quota,
    QuotaKind,
    ReapReport,
    RunResult,
    ScalarPoint,
    ScalarSummary,
    ScheduleInfo,
    Script,
    Task,
    TaskFilter,
    TaskSpec,
    TaskStatus,
    WorkerCommand,
    WorkerInfo,
    WorkerMetrics,
)

__all__ = [
    "AgentStore",
    "ClaimPort",
    "CleanupPort",
    "CleanupStore",
    "ControllerStore",
    "ControllerTasks",
    "ExecutorStore",
    "FairSharePort",
    "GangPort",
    "LeasePort",
    "ListenPort",
    "LogSinkStore",
    "OneTaskStore",
    "OutputReads",
    "OutputWrites",
    "QueueActions",
    "QueueAdmin",
    "QueueReads",
    "QuotaPort",
    "SchedulePort",
    "ScheduleStore",
    "SkipPort",
    "TaskReads",
    "TaskRecords",
    "WorkerAdmin",
    "WorkerPort",
]


class TaskReads(Protocol):
    """Reading tasks back."""

    def get(self, task_id: uuid.UUID) -> Task:
        """The task by id; NotFound when there is none."""
        ...

    def list(
        self,
        *,
        project: str | None = ...,
        name: str | None = ...,
        status: TaskStatus | Sequence[TaskStatus] | None = ...,
        queue: str | None = ...,
        tags: Sequence[str] = ...,
        limit: int = ...,
        user: str | None = ...,
        archived: bool | None = ...,
    ) -> builtins.list[Task]:
        """Tasks matching every filter given, newest first; archived ones only when
        ``archived`` is True (only them) or None (both)."""
        ...


class TaskRecords(TaskReads, Protocol):
    """Tasks as records: create, edit drafts, reset; a running attempt's own writes."""

    def create(self, spec: TaskSpec) -> Task:
        """Store a new task in status created."""
        ...

    def edit(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = ...,
        parameters: dict[str, str] | None = ...,
        script: Script | None = ...,
        env: EnvSpec | None = ...,
        container: Container | None = ...,
        tags: Sequence[str] | None = ...,
        comment: str | None = ...,
        max_attempts: int | None = ...,
        max_run_seconds: float | None = ...,
        output_uri: str | None = ...,
        max_retries: int | None = ...,
        retry_delay_seconds: float | None = ...,
    ) -> Task:
        """Change a draft."""
        ...

    def update_parameters(
        self,
        task_id: uuid.UUID,
        parameters: dict[str, str],
        *,
        fence: Fence | None = ...,
        replace: bool = ...,
    ) -> Task:
        """Merge (or replace) a draft's parameters, or a running attempt's with its fence."""
        ...

    def update_runtime(self, fence: Fence, info: dict[str, Any]) -> None:
        """Merge facts about the current run into ``runtime``."""
        ...

    def resolve_references(self, fence: Fence) -> dict[str, str]:
        """Fill in a running step's ``${step.…}`` parameters; return them all."""
        ...

    def reset(self, task_id: uuid.UUID) -> Task:
        """Turn an ended task back into a draft."""
        ...


class ControllerTasks(TaskRecords, Protocol):
    """Task records a controller also clones (HPO trials, ClearML's ``Task.clone``)."""

    def clone(
        self, task_id: uuid.UUID, *, name: str | None = ..., parent: uuid.UUID | None = ...
    ) -> Task:
        """A new draft with the task's code, environment, parameters and limits; its
        ``parent_id`` is ``parent``, by default the task cloned."""
        ...


class SkipPort(Protocol):
    """Skipping a step a controller decided not to run (``Pipeline.skip``)."""

    def skip(self, task_id: uuid.UUID, reason: str) -> builtins.list[uuid.UUID]:
        """Mark a draft or queued task skipped, and the queued tasks waiting on it after it;
        the ids of those skipped with it."""
        ...


class QueueReads(Protocol):
    """The queues there are."""

    def list(self) -> builtins.list[QueueInfo]:
        """Every queue with its counts."""
        ...


class QueueActions(QueueReads, Protocol):
    """Creating queues and putting tasks in and out of them."""

    def create(
        self,
        name: str,
        *,
        gpus: int = ...,
        max_running: int | None = ...,
        description: str = ...,
        tags: Sequence[str] = ...,
    ) -> QueueInfo:
        """Create a queue."""
        ...

    def enqueue(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        priority: int = ...,
        depends_on: Sequence[uuid.UUID] = ...,
        continue_on_failure: bool = ...,
    ) -> Task:
        """Put a draft in a queue, optionally waiting for parents."""
        ...

    def dequeue(self, task_id: uuid.UUID) -> Task:
        """Take a queued task out of its queue; it becomes a draft again."""
        ...


class FairSharePort(Protocol):
    """Fair share within a queue: whose entry of equal priority goes first."""

    def set_fair_share(
        self, name: str, fair_share: FairShare | None, *, half_life_seconds: float = ...
    ) -> QueueInfo:
        """Share a queue's turns by user or by project (None: first in, first out)."""
        ...


class QuotaPort(Protocol):
    """Quotas: at most N running tasks and G GPUs at once, per user or per project."""

    def set(
        self,
        kind: QuotaKind,
        name: str,
        *,
        max_running: int | None = ...,
        max_gpus: int | None = ...,
    ) -> Quota:
        """Limit ``name``'s running tasks and GPUs, replacing its quota if any."""
        ...

    def clear(self, kind: QuotaKind, name: str) -> None:
        """Lift ``name``'s quota; NotFound when it has none."""
        ...

    def get(self, kind: QuotaKind, name: str) -> Quota:
        """One quota with what it holds now; NotFound when there is none."""
        ...

    def list(self) -> builtins.list[Quota]:
        """Every quota, users first then projects, by name."""
        ...


class QueueAdmin(QueueActions, Protocol):
    """What an operator does to queues (``clearq queue``): describe them, reorder entries."""

    def get(self, name: str) -> QueueInfo:
        """One queue; NotFound when there is none."""
        ...

    def edit(
        self, name: str, *, description: str | None = ..., tags: Sequence[str] | None = ...
    ) -> QueueInfo:
        """Set a queue's description and/or tags (None: unchanged)."""
        ...

    def move_to_front(self, task_id: uuid.UUID) -> None:
        """Make a queued task the next one its queue hands out."""
        ...

    def move_to_back(self, task_id: uuid.UUID) -> None:
        """Make a queued task the last one its queue hands out."""
        ...

    def move_to_queue(self, task_id: uuid.UUID, queue: str) -> Task:
        """Move a queued task to the back of another queue, its priority kept."""
        ...


class ClaimPort(Protocol):
    """One worker's claims over its ordered queues."""

    def claim(self, limit: int = ..., *, among: Sequence[str] | None = ...) -> list[Claim]:
        """Claim up to ``limit`` tasks."""
        ...

    def anything_ready(self, among: Sequence[str] | None = ...) -> bool:
        """Whether a claim now might take something (False: it would take nothing)."""
        ...


class LeasePort(Protocol):
    """Heartbeats, ends of attempts, stop requests and the reaper."""

    def heartbeat(
        self, worker: str | Sequence[str] | None, fences: Sequence[Fence] = ...
    ) -> Heartbeat:
        """Mark the worker(s) seen and extend the leases of ``fences``."""
        ...

    def finish(
        self,
        fence: Fence,
        status: TaskStatus,
        *,
        exit_code: int | None = ...,
        reason: str = ...,
    ) -> None:
        """Record how an attempt ended, with what follows; LeaseLost if it is not its own."""
        ...

    def finish_many(self, results: Sequence[RunResult]) -> frozenset[uuid.UUID]:
        """Record several ended attempts; the tasks whose fence lost."""
        ...

    def requeue(
        self, fence: Fence, *, reason: str, infra: bool = ..., preempted: bool = ...
    ) -> Task:
        """Give a running attempt back to the front of its queue."""
        ...

    def request_stop(self, task_id: uuid.UUID, *, reason: str = ..., force: bool = ...) -> Task:
        """Ask the worker running a task to stop it (``force``: end the attempt now)."""
        ...

    def reap(self) -> ReapReport:
        """Requeue or fail running tasks whose lease expired."""
        ...


class OutputWrites(Protocol):
    """A running attempt's logs and scalars."""

    def append_logs(self, fence: Fence, lines: Sequence[tuple[str, str]]) -> None:
        """Append (stream, text) pieces to the attempt's log."""
        ...

    def append_scalars(self, fence: Fence, points: Sequence[ScalarPoint]) -> None:
        """Append reported values and fold them into the summary."""
        ...


class OutputReads(Protocol):
    """What tasks reported."""

    def logs(
        self,
        task_id: uuid.UUID,
        *,
        after: int = ...,
        attempt: int | None = ...,
        limit: int = ...,
    ) -> list[LogLine]:
        """Log pieces after ``after``, oldest first."""
        ...

    def scalars(
        self, task_id: uuid.UUID, *, title: str | None = ..., series: str | None = ...
    ) -> list[ScalarPoint]:
        """The values reported by the task's latest attempt."""
        ...

    def summary(self, task_id: uuid.UUID) -> list[ScalarSummary]:
        """Last, min and max of each (title, series) of the latest attempt."""
        ...


class WorkerPort(Protocol):
    """An agent's own worker rows."""

    def register(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int | None,
        queues: Sequence[str],
        gpus: Sequence[str] = ...,
        windows: dict[str, Any] | None = ...,
    ) -> WorkerInfo:
        """Record the worker as active (``windows``: its published claim windows)."""
        ...

    def unregister(self, worker_id: str) -> None:
        """Mark the worker gone."""
        ...

    def record_metrics(
        self, worker_id: str, metrics: WorkerMetrics, *, seen: Sequence[str] = ...
    ) -> None:
        """Store one sample of the machine's health; mark ``seen`` workers seen with it."""
        ...

    def command(self, worker_ids: Sequence[str]) -> WorkerCommand | None:
        """What an operator asked of these workers (one agent's rows): drain, pause or none."""
        ...


class WorkerAdmin(WorkerPort, Protocol):
    """What an operator does to workers from any machine (``clearq workers``)."""

    def list(self, *, include_gone: bool = ...) -> builtins.list[WorkerInfo]:
        """Registered workers by id."""
        ...

    def serving(self, queue: str) -> builtins.list[WorkerInfo]:
        """The live workers of ``queue`` (heard from within a lease), held ones included."""
        ...

    def set_command(self, name: str, command: WorkerCommand | None) -> builtins.list[str]:
        """Drain, pause or (None) resume the workers ``name`` stands for; their ids."""
        ...


class ListenPort(Protocol):
    """Waits for wake-up hints (``scheduler.notify.Listener``)."""

    def wait(self, timeout: float) -> list[Any]:
        """Block until a hint arrives or ``timeout`` seconds pass."""
        ...

    def wake(self) -> None:
        """Make a wait in progress, or else the next one, return at once."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...

    @property
    def connected(self) -> bool:
        """True while hints arrive; False while waiting is a polling sleep."""
        ...


class AgentStore(Protocol):
    """What the agent's worker loop uses."""

    @property
    def settings(self) -> Settings: ...
    @property
    def tasks(self) -> TaskReads: ...
    @property
    def queues(self) -> QueueReads: ...
    @property
    def leases(self) -> LeasePort: ...
    @property
    def workers(self) -> WorkerPort: ...
    @property
    def cleanup(self) -> CleanupPort: ...
    @property
    def notifies(self) -> bool:
        """True when idle agents are woken by hints (PostgreSQL), else they poll."""
        ...

    def claimer(
        self, worker: str, queues: Sequence[str], *, order: ClaimOrder = ...
    ) -> ClaimPort: ...
    def listen(
        self,
        channels: Sequence[str] = ...,
        *,
        on_change: Callable[[StoreError | None], None] | None = None,
    ) -> ListenPort: ...


class OneTaskStore(AgentStore, Protocol):
    """What running one named task to its end uses (``clearq task run``, ``agent --once``)."""

    def claim_task(self, worker: str, task_id: uuid.UUID) -> Claim: ...


class GangPort(Protocol):
    """Gang tasks (``nodes`` > 1): join, wait, run and end ranks (``clearq.scheduler.gangs``)."""

    def join(
        self,
        worker: str,
        queues_ranked: Sequence[str],
        *,
        address: str,
        port: int,
        skip: Sequence[uuid.UUID] = ...,
    ) -> GangJoin | None: ...
    def join_task(
        self, worker: str, task_id: uuid.UUID, *, address: str, port: int
    ) -> GangJoin | None: ...
    def wait(self, m: GangMembership) -> Claim | None: ...
    def leave(self, m: GangMembership) -> bool: ...
    def beat(self, fence: Fence, rank: int) -> str | None: ...
    def complete_rank(self, fence: Fence, rank: int) -> bool: ...


class ExecutorStore(Protocol):
    """What running one attempt uses (workspace, environment, process, results)."""

    @property
    def tasks(self) -> TaskRecords: ...
    @property
    def outputs(self) -> OutputWrites: ...


class LogSinkStore(Protocol):
    """What streaming a task's console output uses."""

    @property
    def outputs(self) -> OutputWrites: ...


class ControllerStore(Protocol):
    """What the pipeline and HPO controllers use: records, queues, reported results, skips."""

    @property
    def tasks(self) -> ControllerTasks: ...
    @property
    def queues(self) -> QueueActions: ...
    @property
    def outputs(self) -> OutputReads: ...
    @property
    def admin(self) -> SkipPort: ...


class CleanupPort(Protocol):
    """Archive, unarchive and delete tasks in bulk; retention (``scheduler.cleanup``)."""

    def select(self, where: TaskFilter, *, limit: int | None = ...) -> list[uuid.UUID]:
        """The ids of the tasks ``where`` picks, oldest first."""
        ...

    def archive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Archive the tasks; how many were not archived before. NotFound for unknown ids."""
        ...

    def unarchive(self, task_ids: Sequence[uuid.UUID]) -> int:
        """Bring archived tasks back into the default lists; how many changed."""
        ...

    def delete(self, task_ids: Sequence[uuid.UUID], *, force: bool = ...) -> DeletedTasks:
        """Delete the tasks and every row naming them; running ones only with ``force``
        (stopped first). NotFound for unknown ids, before anything is deleted."""
        ...

    def existing(self, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``task_ids`` that are tasks."""
        ...

    def repositories(self) -> set[str]:
        """Every repository URL a stored task runs from."""
        ...

    def count_old_logs(self, older_than_seconds: float) -> int:
        """Log lines of ended tasks older than ``older_than_seconds``."""
        ...

    def count_old_scalars(self, older_than_seconds: float) -> int:
        """Scalar points and plots of ended tasks older than ``older_than_seconds``."""
        ...

    def purge_logs(self, older_than_seconds: float, *, limit: int | None = ...) -> int:
        """Delete log lines of ended tasks older than ``older_than_seconds`` (at most
        ``limit``); how many."""
        ...

    def purge_scalars(self, older_than_seconds: float, *, limit: int | None = ...) -> int:
        """Delete scalar points and plots of ended tasks older than that, at most
        ``limit`` (the summary stays); how many."""
        ...

    def archived_before(self, seconds: float) -> list[uuid.UUID]:
        """Tasks archived more than ``seconds`` ago and not running."""
        ...

    def take_turn(self, chore: str, holder: str, *, every_seconds: float, keep: bool = ...) -> bool:
        """True when ``holder`` is the one to run the fleet-wide ``chore`` now: it was due,
        and its next time is now ``every_seconds`` ahead (one of racing callers wins).
        ``keep``: the holder keeps its turn, unless another took it meanwhile."""
        ...


class CleanupStore(Protocol):
    """What ``clearq task delete|archive`` and ``clearq gc`` use."""

    @property
    def tasks(self) -> TaskReads: ...
    @property
    def cleanup(self) -> CleanupPort: ...


class SchedulePort(Protocol):
    """Schedules and triggers (``clearq.scheduler.schedules``); the claim fires them."""

    def add(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        every_seconds: float | None = ...,
        cron: str | None = ...,
        timezone: str | None = ...,
        name: str | None = ...,
        priority: int = ...,
        user: str | None = ...,
    ) -> ScheduleInfo:
        """Enqueue a clone of the task every interval, or at each cron time."""
        ...

    def add_trigger(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        on_status: TaskStatus | None = ...,
        on_project: str | None = ...,
        on_tag: str | None = ...,
        name: str | None = ...,
        priority: int = ...,
        user: str | None = ...,
    ) -> ScheduleInfo:
        """Enqueue a clone of the task each time a task (of a project) reaches a status,
        or gains a tag."""
        ...

    def get(self, schedule_id: int) -> ScheduleInfo:
        """One schedule; NotFound when there is none."""
        ...

    def list(self) -> builtins.list[ScheduleInfo]:
        """Every schedule and trigger, by id."""
        ...

    def remove(self, schedule_id: int) -> ScheduleInfo:
        """Remove a schedule and its waiting clone."""
        ...


class ScheduleStore(Protocol):
    """What the schedule commands and the TaskScheduler / TriggerScheduler facades use."""

    @property
    def schedules(self) -> SchedulePort: ...
