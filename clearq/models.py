"""The typed values every layer speaks.

Records are immutable pydantic models; statuses are enums (defined in ``clearq.enums``,
which imports nothing heavy, and re-exported here). The store returns these, the SDK and
the agent pass them around, the CLI prints them.
"""

from __future__ import annotations

import getpass
import os
import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Re-exported: every layer names them through clearq.models.
from clearq.enums import DEFAULT_FAIR_HALF_LIFE as DEFAULT_FAIR_HALF_LIFE
from clearq.enums import FINAL_STATUSES as FINAL_STATUSES
from clearq.enums import RUN_END_STATUSES as RUN_END_STATUSES
from clearq.enums import ClaimOrder as ClaimOrder
from clearq.enums import EnvManager as EnvManager
from clearq.enums import FairShare as FairShare
from clearq.enums import HistoryMark as HistoryMark
from clearq.enums import QuotaKind as QuotaKind
from clearq.enums import ScheduleKind as ScheduleKind
from clearq.enums import TaskStatus as TaskStatus
from clearq.enums import WorkerCommand as WorkerCommand
from clearq.enums import WorkerState as WorkerState


class _Frozen(BaseModel):
    # defer_build: a model's validator and serializer are built on its first use, not when
    # clearq.models is imported (a CLI command or an agent uses a few of these ~35 models).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class UntrackedFile(BaseModel):
    """A file in the working tree that git does not track (and does not ignore)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        defer_build=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    path: str
    """Relative to the repository root, with forward slashes."""
    data: bytes
    executable: bool = False


class Submodule(_Frozen):
    """A submodule of a task's repository, checked out on the agent from its own mirror.

    The agent clones ``repository`` (a ``./`` or ``../`` URL is relative to the URL of
    the repository holding it, as in ``.gitmodules``) into ``path``, checks out
    ``commit``, applies ``diff`` there and writes ``untracked``, then its own submodules.
    """

    path: str
    """Relative to the repository that holds it, with forward slashes."""
    repository: str
    commit: str
    diff: str = ""
    untracked: tuple[UntrackedFile, ...] = ()
    submodules: tuple[Submodule, ...] = ()


class Script(_Frozen):
    """The code a task runs: a git checkout plus local changes, or a standalone script.

    With a repository, the agent checks out ``commit`` (one the remote has), applies
    ``diff`` (``git diff --binary`` from that commit to the captured working tree,
    including commits not yet pushed) and writes ``untracked``. Without one, ``source``
    holds the script's text.
    """

    repository: str | None = None
    branch: str | None = None
    commit: str | None = None
    entry_point: str | None = None
    module: str | None = None
    working_dir: str = "."
    arguments: tuple[str, ...] = ()
    diff: str = ""
    untracked: tuple[UntrackedFile, ...] = ()
    submodules: tuple[Submodule, ...] = ()
    """Checked out recursively, each with its own changes, after the main tree."""
    source: str | None = None
    python_version: str | None = None


class EnvSpec(_Frozen):
    """What a task's Python environment must hold (``clearq.envs`` builds it)."""

    manager: EnvManager = EnvManager.UV
    python: str | None = None
    """Python version (``3.11``); None: the agent's own major.minor."""
    requirements: tuple[str, ...] = ()
    """Requirement lines (PEP 508); with a lock file, installed on top of it."""
    lock_file: str | None = None
    """A lock file's text: ``uv.lock``, ``poetry.lock``, ``environment.yml``, conda-lock."""
    lock_kind: str | None = None
    """The lock file's name (``uv.lock``, ``poetry.lock``, ``environment.yml``, ...)."""
    project_file: str | None = None
    """The ``pyproject.toml`` beside the lock: poetry's (which says what is main), or
    ``uv.lock``'s (which ``uv sync --locked`` checks the lock against)."""
    index_urls: tuple[str, ...] = ()
    """Package indexes searched before the default one, in this order."""
    install_first: tuple[str, ...] = ()
    """Requirement lines installed in a step of their own before ``requirements`` (and
    after a lock file): what later packages need at build time (``torch``)."""
    no_build_isolation: tuple[str, ...] = ()
    """Requirement lines installed last, in a step of their own, built without build
    isolation, so they build against the env as it stands (``flash-attn`` against the
    ``torch`` installed before it); the env must hold their build requirements
    (``setuptools``, ``wheel``, ...) by then."""
    torch_backend: str | None = None
    """Which build of PyTorch-ecosystem packages uv installs (uv's ``--torch-backend``):
    ``auto`` picks the CUDA build for the agent machine's driver (CPU without one),
    ``cpu``, ``cu126``, ``rocm6.3``, ...; None: the index's default build. The uv manager
    only."""


class Container(_Frozen):
    """The Docker image a task runs in, and how to prepare it."""

    image: str | None = None
    arguments: tuple[str, ...] = ()
    setup_script: str = ""
    system_packages: tuple[str, ...] = ()


STEP_KEY_PREFIX = "Pipeline/steps/"
"""A pipeline record's parameter naming a step's task: ``Pipeline/steps/<name>`` -> id.

Written by the pipeline controller (``clearq.automation``), read where a step's
``${step.…}`` references are resolved (``clearq.scheduler.references``).
"""


class TaskSpec(_Frozen):
    """Everything needed to create a task."""

    project: str
    name: str
    type: str = "training"
    script: Script = Field(default_factory=Script)
    env: EnvSpec = Field(default_factory=EnvSpec)
    container: Container = Field(default_factory=Container)
    parameters: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    comment: str = ""
    parent_id: uuid.UUID | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    max_run_seconds: float | None = Field(default=None, gt=0)
    output_uri: str | None = None
    max_retries: int = Field(default=0, ge=0)
    """How many times a failing run (the code's own failure) is retried."""
    retry_delay_seconds: float | None = Field(default=None, ge=0)
    """The first retry's delay; each next one doubles it."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Variables the task's process (and setup script) gets, besides the agent's
    allow-listed ones; the agent's operator's ``--env`` values win over these."""

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        return check_environment(value)

    nodes: int = Field(default=1, ge=1)
    """Ranks on as many agents, started together (a gang); 1: an ordinary task."""
    user: str = Field(default_factory=lambda: current_user(), min_length=1, max_length=256)
    """Who made the task: ``CLEARQ_USER``, else the OS user (a clone is its cloner's)."""


class Task(_Frozen):
    """A task as stored."""

    id: uuid.UUID
    project: str
    name: str
    type: str
    status: TaskStatus
    status_reason: str = ""
    script: Script
    env: EnvSpec
    container: Container
    parameters: dict[str, str]
    tags: tuple[str, ...]
    comment: str
    parent_id: uuid.UUID | None
    output_uri: str | None
    runtime: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    queue: str | None
    worker: str | None
    attempt: int
    tries: int
    max_attempts: int
    max_run_seconds: float | None
    lease_expires_at: datetime | None
    stop_requested_at: datetime | None
    exit_code: int | None
    max_retries: int = 0
    retries: int = 0
    retry_delay_seconds: float | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    nodes: int = 1
    user: str | None = None
    """Who made the task (None: made before clearq recorded it)."""
    archived_at: datetime | None = None
    """When the task was archived: it stays readable by id but leaves the default lists."""

    @property
    def archived(self) -> bool:
        """True when the task is archived."""
        return self.archived_at is not None


def clone_spec(
    source: Task,
    *,
    name: str | None = None,
    parent: uuid.UUID | None = None,
    user: str | None = None,
) -> TaskSpec:
    """The spec of a clone of ``source``: its code, environment, parameters and limits.

    ``user``: who the clone is made by (default: the current user, the cloner).
    """
    return TaskSpec(
        project=source.project,
        name=name or f"{source.name} (clone)",
        type=source.type,
        script=source.script,
        env=source.env,
        container=source.container,
        parameters=dict(source.parameters),
        tags=source.tags,
        comment=source.comment,
        parent_id=parent or source.id,
        max_attempts=source.max_attempts,
        max_run_seconds=source.max_run_seconds,
        output_uri=source.output_uri,
        max_retries=source.max_retries,
        retry_delay_seconds=source.retry_delay_seconds,
        environment=source.environment,
        nodes=source.nodes,
        **({"user": user} if user else {}),
    )


class TaskEvent(_Frozen):
    """One change of a task's status or attempt, as the database recorded it."""

    at: datetime
    status: TaskStatus | HistoryMark
    """The status it changed to, or a mark such as ``preempted`` (then the next entry is
    the status that followed)."""
    attempt: int
    worker: str | None
    reason: str


class Fence(_Frozen):
    """Who may write about a running task: this attempt, by this worker.

    ``worker`` is None for a task run by hand (``Task.init`` outside an agent).
    """

    task_id: uuid.UUID
    attempt: int
    worker: str | None


class GangRank(_Frozen):
    """This rank's place in a gang task (``nodes`` > 1) and where its rank 0 listens."""

    rank: int
    size: int
    master_addr: str
    master_port: int


class GangMembership(_Frozen):
    """A rank an agent holds in a gang task that has not started yet."""

    task_id: uuid.UUID
    attempt: int
    rank: int
    worker: str
    queue: str


class Claim(_Frozen):
    """A task a worker has just claimed from one of its queues."""

    task_id: uuid.UUID
    attempt: int
    worker: str
    """The fence's worker: this worker, or for a gang the gang's shared name."""
    queue: str
    gang: GangRank | None = None
    """This worker's rank, for a gang task."""

    @property
    def fence(self) -> Fence:
        """The fence every write about this attempt must carry."""
        return Fence(task_id=self.task_id, attempt=self.attempt, worker=self.worker)


class RunResult(_Frozen):
    """How one attempt ended, as its worker reports it."""

    fence: Fence
    status: TaskStatus
    exit_code: int | None = None
    reason: str = ""


class QueueInfo(_Frozen):
    """A queue with its current length and the age of its oldest entry."""

    id: int
    name: str
    gpus: int
    created_at: datetime
    length: int = 0
    oldest_enqueued_at: datetime | None = None
    max_running: int | None = None
    """At most this many of its tasks run at once (None: no cap)."""
    description: str = ""
    """What the queue is for, for people."""
    tags: tuple[str, ...] = ()
    fair_share: FairShare | None = None
    """Among entries of equal priority, the user's (or project's) with least recent usage
    goes first (None: first in, first out)."""
    fair_half_life: float | None = None
    """Seconds after which a run's usage counts half, in a fair-share queue."""


class Quota(_Frozen):
    """A limit on what one user's (or one project's) tasks hold at once, with its use now.

    Running tasks are those agents claimed from a queue; a task holds its queue's GPUs.
    """

    kind: QuotaKind
    name: str
    max_running: int | None = None
    """At most this many of its tasks run at once (None: no limit on the count)."""
    max_gpus: int | None = None
    """At most this many GPUs held by its running tasks at once (None: no GPU limit)."""
    running: int = 0
    gpus: int = 0


class ScheduleInfo(_Frozen):
    """A schedule or trigger: a clone of ``task_id`` enqueued in ``queue`` each time it fires."""

    id: int
    kind: ScheduleKind
    task_id: uuid.UUID
    """The task cloned at each time."""
    queue: str
    name: str
    """The name each clone gets."""
    priority: int = 0
    every_seconds: float | None = None
    cron: str | None = None
    timezone: str | None = None
    on_status: TaskStatus | None = None
    """A trigger's status: it fires when a task reaches it."""
    on_project: str | None = None
    """A trigger's project (None: any project)."""
    on_tag: str | None = None
    """A trigger's tag: it fires when a task gains it."""
    created_at: datetime
    created_by: str | None = None
    fired: int = 0
    """How many clones it has started."""
    last_fired_at: datetime | None = None
    last_task_id: uuid.UUID | None = None
    """The clone it started last."""
    next_task_id: uuid.UUID | None = None
    """The clone waiting in the queue for the next time (None: it was dequeued)."""
    next_at: datetime | None = None
    """When the waiting clone may be claimed; None for a trigger waiting for its event."""
    pending_events: int = 0
    """A trigger's events not yet turned into runs."""


class QueueEntry(_Frozen):
    """One task waiting in a queue, in claim order."""

    task_id: uuid.UUID
    task_name: str
    priority: int
    enqueued_at: datetime


class WorkerInfo(_Frozen):
    """A registered worker and what it is running."""

    id: str
    host: str
    pid: int | None
    queues: tuple[str, ...]
    gpus: tuple[str, ...]
    state: WorkerState
    started_at: datetime
    last_seen: datetime
    tasks: tuple[uuid.UUID, ...] = ()
    command: WorkerCommand | None = None
    """What an operator asked of it, until it is resumed (or gone)."""
    windows: dict[str, Any] | None = None
    """Its claim windows (``agent --uptime/--downtime``) as it published them: their texts
    and its machine's zone (``ClaimWindows.from_published``); None: it claims at any time."""


class GpuMetrics(_Frozen):
    """One GPU's figures at one moment."""

    index: int
    utilization_percent: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None


class WorkerMetrics(_Frozen):
    """A machine's figures at one moment, as a worker reports them."""

    cpu_percent: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    disk_free: int | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    gpus: tuple[GpuMetrics, ...] = ()


class MetricsSample(_Frozen):
    """A stored metrics row."""

    worker_id: str
    at: datetime
    metrics: WorkerMetrics


class LogLine(_Frozen):
    """A piece of a task's console output; ``seq`` orders lines and resumes a follow."""

    seq: int
    attempt: int
    at: datetime
    stream: str
    text: str


class ScalarPoint(_Frozen):
    """One reported value of a (title, series) at an iteration."""

    title: str
    series: str
    iteration: int
    value: float


class ScalarSummary(_Frozen):
    """The last, min and max of one (title, series) for a task's latest attempt."""

    title: str
    series: str
    last: float
    min: float
    max: float
    last_iteration: int


class Artifact(_Frozen):
    """A file or object a task stored, by reference."""

    name: str
    uri: str
    kind: str = "file"
    size: int | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ReportedPlot(_Frozen):
    """A plot a task reported: a plotly figure (``{"data": [...], "layout": {...}}``)."""

    id: int
    attempt: int
    title: str
    series: str
    iteration: int
    kind: str
    figure: dict[str, Any]
    at: datetime


class DebugSample(_Frozen):
    """A debug sample a task reported: an image, audio, video, HTML or other file."""

    id: int
    attempt: int
    title: str
    series: str
    iteration: int
    kind: str
    uri: str
    content_type: str
    size: int | None
    at: datetime


class ModelRecord(_Frozen):
    """A model a task's run stored: its weights' file, framework, labels, configuration."""

    id: uuid.UUID
    task_id: uuid.UUID
    name: str
    framework: str = ""
    uri: str | None = None
    size: int | None = None
    sha256: str | None = None
    labels: dict[str, int] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    comment: str = ""
    iteration: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Heartbeat(_Frozen):
    """What a heartbeat learned about the attempts a worker holds."""

    held: frozenset[uuid.UUID] = frozenset()
    """Tasks whose lease was extended."""
    lost: frozenset[uuid.UUID] = frozenset()
    """Tasks the worker must stop: their attempt is no longer its own."""
    stop_requested: frozenset[uuid.UUID] = frozenset()
    """Held tasks someone asked to stop."""
    overtime: frozenset[uuid.UUID] = frozenset()
    """Held tasks running longer than their ``max_run_seconds``, on the database's clock."""
    stop_reasons: dict[uuid.UUID, str] = {}
    """Why each of ``stop_requested`` was asked to stop (what the stopped task will say)."""


class TaskFilter(_Frozen):
    """Which tasks a bulk operation (archive, delete) picks: every field given must hold.

    ``ended_before_seconds``: the task finished (or, never run, was made) more than that
    many seconds ago. ``archived``: True only archived tasks, False only others, None both.
    """

    project: str | None = None
    statuses: tuple[TaskStatus, ...] = ()
    tags: tuple[str, ...] = ()
    user: str | None = None
    ended_before_seconds: float | None = Field(default=None, gt=0)
    archived: bool | None = None

    @property
    def is_empty(self) -> bool:
        """True when nothing narrows the pick (every task would match)."""
        return (
            self.project is None
            and not self.statuses
            and not self.tags
            and self.user is None
            and self.ended_before_seconds is None
            and self.archived is None
        )


class DeletedTasks(_Frozen):
    """What a delete removed: the tasks, and the files their rows named (the caller's)."""

    deleted: tuple[uuid.UUID, ...] = ()
    files: tuple[str, ...] = ()
    """URIs of the deleted tasks' artifacts, debug samples and models' weights."""
    skipped: tuple[uuid.UUID, ...] = ()
    """Tasks left in place because they started running meanwhile (refused without force)."""


class ReapReport(_Frozen):
    """What one reaper pass did."""

    requeued: tuple[uuid.UUID, ...] = ()
    failed: tuple[uuid.UUID, ...] = ()
    workers_gone: tuple[str, ...] = ()
    active_workers: int = 0
    """Workers active after the pass (the agents that share the reaping)."""


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_environment(values: dict[str, str]) -> dict[str, str]:
    """A task's ``environment``, checked: names are variable names, none is ``CLEARQ_*``.

    Raises ValueError saying which name is wrong.
    """
    for name, value in values.items():
        if not _VARIABLE.fullmatch(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        if name.upper().startswith("CLEARQ_"):
            raise ValueError(f"{name}: CLEARQ_* variables are set by the agent only")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"{name}: the value must be text without NUL characters")
    return dict(values)


class GangJoin(_Frozen):
    """A join of a gang: the rank still waits, or (``claim``) the gang started with it."""

    membership: GangMembership
    claim: Claim | None = None


def current_user() -> str:
    """Who is making tasks here: ``CLEARQ_USER``, else the OS user's name."""
    named = os.environ.get("CLEARQ_USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return f"uid-{os.getuid()}"
