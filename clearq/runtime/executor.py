"""One claimed task, run by an agent: workspace -> setup script -> environment -> process.

Each step that fails ends the task failed, with a reason naming the step and keeping
the tool's own words (git's, the installer's, the script's exit); the agent goes on to
the next task. While the process runs, the executor watches its :class:`Control` (a stop
request, a run past its maximum time on the database's clock, a lost lease, the agent
shutting down) and samples its process tree's CPU and memory as the task's ``monitor``
scalars.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from clearq.config import ensure_home
from clearq.errors import (
    ClearqError,
    EnvBuildError,
    InvalidInput,
    LeaseLost,
    StoreError,
    StoreUnavailable,
)
from clearq.models import Claim, Fence, GangRank, ScalarPoint, Task, TaskStatus
from clearq.ports import ExecutorStore, GangPort
from clearq.runtime.channel import AttemptChannel, ChannelStore
from clearq.runtime.gangs import gang_watch, rank_environment, rank_prefix, rank_suffix
from clearq.runtime.graces import DEFAULT_STOP_GRACE_SECONDS as DEFAULT_STOP_GRACE_SECONDS
from clearq.runtime.logsink import LogSink
from clearq.runtime.monitor import ProcessTreeMonitor
from clearq.runtime.outage import retry_while_held
from clearq.runtime.process import ProcessStartError, TaskProcess, describe_exit
from clearq.runtime.taskenv import (
    EnvProvider,
    PreparedEnv,
    clearq_path_entry,
    task_environment,
    with_sdk_requirements,
)
from clearq.runtime.taskuser import TaskUser
from clearq.runtime.workspace import WorkspaceError, build_workspace

log = logging.getLogger(__name__)

TASK_MONITOR_SECONDS = 5.0
MONITOR_TITLE = "monitor"
_WATCH_SECONDS = 0.2


class Step(enum.StrEnum):
    """A step of running a task, named in the reason when it fails."""

    PARAMETERS = "parameters"
    WORKSPACE = "workspace"
    SETUP = "setup script"
    ENVIRONMENT = "environment"
    START = "start"
    CONTAINER = "container"
    SYSTEM_PACKAGES = "system packages"


class StepFailed(ClearqError):
    """A step of running a task failed; the task fails with this as its reason."""

    def __init__(self, step: Step, message: str, *, infra: bool = False) -> None:
        self.step = step
        self.infra = infra
        super().__init__(f"{step.value} failed: {message}")


@dataclass
class Control:
    """How the agent tells a running task what to do; set from other threads.

    ``hold_until`` is the agent's own give-up time for the attempt's lease, on its
    monotonic clock: each successful renewal moves it on. Once it passes, the attempt
    counts as lost (``lost`` is True, ``outlived`` says why): a partitioned agent stops
    its task before the lease can pass to another agent, whatever the database says.
    ``keepalive`` is told each new give-up time: the running process's watchdog, which
    ends the task at that time even when this agent is frozen and cannot.
    """

    stop_reason: str | None = None
    requeue_reason: str | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    hold_until: float | None = None
    clock: Callable[[], float] = time.monotonic
    keepalive: Callable[[float], None] | None = None
    _lost: bool = False

    def stop(self, reason: str) -> None:
        """Stop the task; it ends ``stopped`` with ``reason``."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake.set()

    def lose(self) -> None:
        """The attempt is no longer ours: kill the process, record nothing."""
        self._lost = True
        self.wake.set()

    def requeue(self, reason: str) -> None:
        """Preempt the task: stop it (SIGTERM, its grace, SIGKILL) and give it back to the
        front of its queue, without spending an attempt; its history says ``preempted``."""
        self.requeue_reason = reason
        self.wake.set()

    def renewed(self, until: float) -> None:
        """The lease was renewed: hold the attempt until ``until`` (monotonic) at least."""
        if self.hold_until is None or until > self.hold_until:
            self.hold_until = until
        if (keepalive := self.keepalive) is not None:
            keepalive(until)

    @property
    def outlived(self) -> bool:
        """True once the agent's own give-up time for the lease has passed."""
        return self.hold_until is not None and self.clock() >= self.hold_until

    @property
    def lost(self) -> bool:
        """True once the attempt is no longer ours: taken over, or its lease outlived."""
        return self._lost or self.outlived

    @property
    def interrupted(self) -> bool:
        """True once the task must stop running for any reason."""
        return self.lost or self.stop_reason is not None or self.requeue_reason is not None


@dataclass(frozen=True)
class Outcome:
    """How a run ended. ``status`` None: requeued (``requeue``) or lost (nothing to record)."""

    status: TaskStatus | None
    exit_code: int | None = None
    reason: str = ""
    requeue: bool = False
    infra: bool = False
    """A requeue for a failure of the machine or network: it spends one of max_attempts."""
    preempted: bool = False
    """A requeue because the run was interrupted from outside (recorded as preempted)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """What every run of an agent shares."""

    home: Path
    database_url: str
    worker: str
    database_pgbouncer: bool = False
    """The database URL is a pgbouncer in transaction mode: tasks are told so too."""
    stop_grace: float = DEFAULT_STOP_GRACE_SECONDS
    monitor_seconds: float = TASK_MONITOR_SECONDS
    keep_workspaces: bool = False
    allow_local_repositories: bool = False
    """Clone a task's repository from a path or ``file://`` URL on this machine."""
    secrets: tuple[str, ...] = ()
    """Values masked in every task's stored log (``clearq.secrets.known_secrets``)."""
    forced_environment: Mapping[str, str] = field(default_factory=dict)
    """The operator's variables for every task (``clearq agent --env``); they win over
    the task's own ``environment``."""
    task_user: TaskUser | None = None
    """Run host-mode tasks as this OS user (``clearq agent --task-user``); None: as the
    agent's own user, which makes a task as trusted as its agent."""
    allow_controllers: bool = False
    """Give every task the database URL: full SDK access (pipelines, HPO, services).

    Without it a task reaches the store only through its attempt's channel
    (``clearq.runtime.channel``): its own rows and nothing else."""

    def database_environment(self) -> dict[str, str]:
        """What a task is told of the database: all of it on a controllers' agent, else nothing."""
        if not self.allow_controllers:
            return {}
        return {
            "CLEARQ_DATABASE_URL": self.database_url,
            "CLEARQ_DATABASE_PGBOUNCER": "1" if self.database_pgbouncer else "0",
            "CLEARQ_HOME": str(self.home),
        }


@dataclass(frozen=True)
class ReadyTask:
    """An attempt whose code is rebuilt on the host: what comes after the workspace needs."""

    task: Task
    fence: Fence
    code_dir: Path
    run_dir: Path
    gpus: tuple[str, ...] | None
    channel: AttemptChannel
    """The attempt's channel to the store (its socket is in the run folder)."""
    gang: GangRank | None = None
    """This rank of a gang task; None for an ordinary task."""


class AfterWorkspace(Protocol):
    """Runs a task past its workspace instead of the host's steps (Docker mode)."""

    def run(self, ready: ReadyTask, control: Control, sink: LogSink) -> Outcome:
        """Run the task to its end; raise StepFailed for a step that failed."""
        ...


class Executor:
    """Runs claimed tasks on this machine, with environments from ``envs``.

    With ``after_workspace`` every step after the workspace is handed to it instead.
    ``channel_store`` serves each attempt's channel (``clearq.runtime.channel``): the
    task's only way to its rows.
    """

    def __init__(
        self,
        store: ExecutorStore,
        envs: EnvProvider,
        config: ExecutorConfig,
        *,
        channel_store: ChannelStore,
        after_workspace: AfterWorkspace | None = None,
        gangs: GangPort | None = None,
    ) -> None:
        self._store = store
        self._gangs = gangs
        self._channel_store = channel_store
        self._envs = envs
        self._config = config
        self._after_workspace = after_workspace
        self._clearq_path = clearq_path_entry(ensure_home(config.home))
        if config.task_user is not None:
            config.task_user.prepare_home(config.home)

    @property
    def gangs(self) -> GangPort | None:
        """The gangs' port when this executor runs ranks of gang tasks; None: it runs none."""
        return self._gangs

    def run(self, claim: Claim, control: Control, gpus: Sequence[str] | None) -> Outcome:
        """Run the claimed attempt to its end and say how it ended (the caller records it)."""
        fence = claim.fence
        prefix = rank_prefix(claim.gang)
        sink = LogSink(self._store, fence, secrets=self._config.secrets, line_prefix=prefix)
        # Ranks of one gang may run on one machine: each has a folder of its own.
        rank = rank_suffix(claim.gang)
        folder = self._config.home / "runs" / f"{claim.task_id}-{claim.attempt}{rank}"
        held = _held(control)
        channel = AttemptChannel(self._channel_store, fence, folder)
        try:
            task = retry_while_held(lambda: self._store.tasks.get(claim.task_id), held)
            sink.agent(
                f"clearq agent {self._config.worker}: attempt {claim.attempt} of task "
                f"{task.id} from queue {claim.queue}"
            )
            with gang_watch(self._gangs, claim, control), channel:
                outcome = self._run(task, fence, control, gpus, sink, channel, claim.gang)
        except LeaseLost:
            outcome = Outcome(None, reason="lease lost")
        except StoreUnavailable as e:
            # The database failed the run, not the task's code: it runs again.
            outcome = Outcome(
                None, reason=f"the store failed during the run: {e}", requeue=True, infra=True
            )
            if control.lost:
                outcome = Outcome(None, reason="lease outlived while the store was unreachable")
        except StepFailed as e:
            sink.agent(str(e))
            if e.infra:  # the network or the machine failed, not the task: try again
                outcome = Outcome(None, reason=str(e), requeue=True, infra=True)
            else:
                outcome = Outcome(TaskStatus.FAILED, None, str(e))
        finally:
            sink.close(held=held)
            if not self._config.keep_workspaces:
                _remove(folder)
        if sink.lost:
            return Outcome(None, reason="lease lost")
        return outcome

    def _run(
        self,
        task: Task,
        fence: Fence,
        control: Control,
        gpus: Sequence[str] | None,
        sink: LogSink,
        channel: AttemptChannel,
        gang: GangRank | None = None,
    ) -> Outcome:
        folder = channel.path.parent
        self._resolve_references(fence, control)
        code_dir = folder / "code"
        run_dir = self._workspace(task, code_dir)
        if self._config.task_user is not None:
            sink.agent(f"running the task as user {self._config.task_user.name}")
            self._config.task_user.hand_over(folder)
            self._config.task_user.hand_over(self._config.home / "artifacts" / str(task.id))
        if (early := _before_start(control)) is not None:
            return early
        if self._after_workspace is not None:
            devices = tuple(gpus) if gpus is not None else None
            ready = ReadyTask(task, fence, code_dir, run_dir, devices, channel, gang)
            return self._after_workspace.run(ready, control, sink)
        if task.container.setup_script.strip():
            self._setup(task, folder, run_dir, gpus, sink, control)
        spec = with_sdk_requirements(task.env)
        try:
            with self._envs.prepare(spec, log=sink.agent, workspace=code_dir) as env:
                self._record_runtime(fence, env, gpus, control)
                if (early := _before_start(control)) is not None:
                    return early
                argv = _command(task, env.python, code_dir)
                environ = self._environ(task, fence, env.python, gpus, (code_dir, run_dir), channel)
                if gang is not None:
                    environ.update(rank_environment(gang, gpus))
                title = MONITOR_TITLE if gang is None else f"{MONITOR_TITLE}/rank{gang.rank}"
                return self._supervise(task, fence, argv, run_dir, environ, sink, control, title)
        except EnvBuildError as e:
            sink.agent(str(e))  # the installer's own words, whole, in the task's log
            raise StepFailed(Step.ENVIRONMENT, e.summary, infra=e.infra) from e

    def _resolve_references(self, fence: Fence, control: Control) -> None:
        # A pipeline step's ${step.…} parameters: its parents have completed by now.
        try:
            retry_while_held(lambda: self._store.tasks.resolve_references(fence), _held(control))
        except InvalidInput as e:
            raise StepFailed(Step.PARAMETERS, str(e)) from e

    def _workspace(self, task: Task, dest: Path) -> Path:
        if dest.exists():
            shutil.rmtree(dest)  # left by an earlier agent on this machine for this attempt
        try:
            return build_workspace(
                task.script,
                dest,
                mirror_cache=self._config.home / "git-mirrors",
                allow_local=self._config.allow_local_repositories,
            )
        except WorkspaceError as e:
            raise StepFailed(Step.WORKSPACE, str(e), infra=e.infra) from e

    def _setup(
        self,
        task: Task,
        folder: Path,
        run_dir: Path,
        gpus: Sequence[str] | None,
        sink: LogSink,
        control: Control,
    ) -> None:
        # Run as a file by bash, never pasted into a command line.
        script = folder / "setup.sh"
        script.write_text(task.container.setup_script)
        sink.agent("running the task's setup script")
        environ = task_environment(
            os.environ,
            python=None,
            clearq_path=None,
            settings=self._who(),
            gpus=gpus,
            own=task.environment,
            forced=self._config.forced_environment,
        )
        try:
            proc = TaskProcess(
                ["bash", str(script)], cwd=run_dir, env=environ, sink=sink, user=self._user
            )
        except ProcessStartError as e:
            raise StepFailed(Step.SETUP, str(e)) from e
        with _kept_alive(proc, control):
            code = _wait_or_stop(proc, control, self._config.stop_grace)
        if control.interrupted:
            return  # the caller's next check ends the run
        if code != 0:
            raise StepFailed(Step.SETUP, describe_exit(code))

    def _record_runtime(
        self, fence: Fence, env: PreparedEnv, gpus: Sequence[str] | None, control: Control
    ) -> None:
        facts = {
            "env": env.facts(),
            "host": socket.gethostname(),
            "worker": self._config.worker,
            "gpus": list(gpus) if gpus is not None else None,
        }
        try:
            retry_while_held(lambda: self._store.tasks.update_runtime(fence, facts), _held(control))
        except LeaseLost:
            control.lose()

    @property
    def _user(self) -> tuple[int, int] | None:
        user = self._config.task_user
        return None if user is None else (user.uid, user.gid)

    def _who(self) -> dict[str, str]:
        user = self._config.task_user
        return {} if user is None else user.environment()

    def _environ(
        self,
        task: Task,
        fence: Fence,
        python: Path,
        gpus: Sequence[str] | None,
        import_paths: Sequence[Path],
        channel: AttemptChannel,
    ) -> dict[str, str]:
        clearq_vars = {
            "CLEARQ_TASK_ID": str(fence.task_id),
            "CLEARQ_ATTEMPT": str(fence.attempt),
            "CLEARQ_WORKER": fence.worker or "",
            **channel.environment(),
            **self._config.database_environment(),
        }
        return task_environment(
            os.environ,
            python=python,
            clearq_path=self._clearq_path,
            settings={**self._who(), **clearq_vars},
            gpus=gpus,
            own=task.environment,
            forced=self._config.forced_environment,
            import_paths=import_paths,
        )

    def _supervise(
        self,
        task: Task,
        fence: Fence,
        argv: list[str],
        run_dir: Path,
        environ: dict[str, str],
        sink: LogSink,
        control: Control,
        title: str = MONITOR_TITLE,
    ) -> Outcome:
        try:
            proc = TaskProcess(argv, cwd=run_dir, env=environ, sink=sink, user=self._user)
        except ProcessStartError as e:
            raise StepFailed(Step.START, str(e)) from e
        watch = _Watch(proc, self._resource_writer(fence, control), title=title)
        with _kept_alive(proc, control):
            code = self._watch(proc, control, watch)
        if isinstance(code, Outcome):
            return code
        if code == 0:
            return Outcome(TaskStatus.COMPLETED, 0, "")
        return Outcome(TaskStatus.FAILED, code, describe_exit(code))

    def _watch(self, proc: TaskProcess, control: Control, watch: _Watch) -> int | Outcome:
        """The process's exit code, or the outcome when it was stopped or lost."""
        while proc.poll() is None:
            control.wake.wait(_WATCH_SECONDS)
            control.wake.clear()
            if control.lost:
                proc.kill()
                return Outcome(None, reason="lease lost")
            if control.requeue_reason is not None:
                proc.stop(self._config.stop_grace)
                return Outcome(None, reason=control.requeue_reason, requeue=True, preempted=True)
            if control.stop_reason is not None:
                code = proc.stop(self._config.stop_grace)
                return Outcome(TaskStatus.STOPPED, code, control.stop_reason)
            watch.sample()
        code = proc.wait()
        if control.lost:
            return Outcome(None, reason="lease lost")
        return code

    def _resource_writer(
        self, fence: Fence, control: Control
    ) -> Callable[[list[ScalarPoint]], None]:
        def write(points: list[ScalarPoint]) -> None:
            try:
                self._store.outputs.append_scalars(fence, points)
            except LeaseLost:
                control.lose()
            except StoreUnavailable:
                return  # a sample lost in an outage: the agent reports the outage itself
            except StoreError as e:
                log.warning("cannot write task resources: %s", e)

        return write


class _Watch:
    """A running process's clock and its periodic resource samples."""

    def __init__(
        self,
        proc: TaskProcess,
        write: Callable[[list[ScalarPoint]], None],
        every: float = TASK_MONITOR_SECONDS,
        title: str = MONITOR_TITLE,
    ) -> None:
        self._title = title
        self._started = time.monotonic()
        self._write = write
        self._every = every
        self._next = self._started + every
        self._tree = ProcessTreeMonitor(proc.pid, root=not proc.watched)

    def sample(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._every
        figures = self._tree.sample()
        if figures is None:
            return
        cpu, rss = figures
        second = int(now - self._started)
        self._write(
            [
                ScalarPoint(title=self._title, series="cpu_percent", iteration=second, value=cpu),
                ScalarPoint(
                    title=self._title, series="memory_mb", iteration=second, value=rss / 2**20
                ),
            ]
        )


@contextlib.contextmanager
def _kept_alive(proc: TaskProcess, control: Control) -> Iterator[None]:
    """Feed ``proc``'s watchdog the attempt's give-up times while it runs.

    A process the watchdog killed at that time is the lost attempt's, whoever looks
    first: the give-up stands even if a late renewal reached the agent after it.
    """
    control.keepalive = proc.hold
    if control.hold_until is not None:
        proc.hold(control.hold_until)
    try:
        yield
    finally:
        control.keepalive = None
        if proc.gave_up:
            control.lose()


def _held(control: Control) -> Callable[[], bool]:
    """True while the attempt under ``control`` is still this agent's."""
    return lambda: not control.lost


def _before_start(control: Control) -> Outcome | None:
    """The outcome when the run was interrupted before its process started."""
    if control.lost:
        return Outcome(None, reason="lease lost")
    if control.requeue_reason is not None:
        return Outcome(None, reason=control.requeue_reason, requeue=True, preempted=True)
    if control.stop_reason is not None:
        return Outcome(TaskStatus.STOPPED, None, control.stop_reason)
    return None


def _wait_or_stop(proc: TaskProcess, control: Control, grace: float) -> int:
    while proc.poll() is None:
        control.wake.wait(_WATCH_SECONDS)
        control.wake.clear()
        if control.lost:
            return proc.kill()  # another agent may own the task by now: no grace
        if control.interrupted:
            return proc.stop(grace)
    return proc.wait()


def _command(task: Task, python: Path, code_dir: Path) -> list[str]:
    script = task.script
    if script.module:
        return [str(python), "-m", script.module, *script.arguments]
    if script.entry_point is None:
        raise StepFailed(Step.START, "the task names no entry point and no module to run")
    return [str(python), str(code_dir / script.entry_point), *script.arguments]


def _remove(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        return
    except OSError as e:
        # A run folder that cannot be removed costs disk, not correctness: say so, go on.
        log.warning("could not remove %s: %s", folder, e)
