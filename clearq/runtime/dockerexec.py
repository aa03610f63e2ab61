"""Docker mode for the agent: a task's setup, environment and process in a container.

The executor rebuilds the task's code on the host as always, then hands the rest to a
:class:`DockerExecution`: the workspace is mounted into a container from the task's
image (or the agent's ``--docker`` default), where ``clearq.envs.docker``'s bootstrap
installs the system packages, runs the setup script, takes a venv from the container env
cache and runs the entry point. The container gets the same ``CLEARQ_*`` variables as a
host run; an SQLite database's folder and the task's own artifacts folder
(``ARTIFACTS/<task id>``, never the root: no task can overwrite another's artifacts) are
mounted at their own paths, so the task reaches both as the agent does. A venv missing
from the env cache is built before, in a container of its own, its output in the task's
log; the task's container sees the cache read-only. Its output goes to the task's log;
stop requests, lost leases and the agent's shutdown stop it as they stop a host process;
the container is removed however the run ends.

A rank of a multi-node task runs as on the host (``clearq.runtime.gangs``): its
container gets the rank's variables (``MASTER_ADDR``, ``RANK``, torchrun's ``PET_*``...),
a name of its own per rank, and the host's network, so that rank 0 listens on
``MASTER_PORT`` at the host's address and every rank reaches every other one. The agent
takes ranks only where its operator allows the host's network (:func:`gang_refusal`);
when another rank fails or is lost, the watch stops this rank's container as it stops a
host process.

A bootstrap step that fails (exit codes 249-253) fails the task with a reason naming the
step, like the host path's; the container engine's own failures (no engine, no image,
refused docker arguments) fail it as the ``container`` step.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from clearq.config import Settings
from clearq.envs import (
    ContainerEngine,
    ContainerError,
    ContainerInterrupted,
    ContainerStepFailed,
    DockerConfig,
    DockerRun,
    DockerRunner,
    DockerTask,
    EngineUnavailable,
    Mount,
    connect_engine,
    database_mounts,
    describe_exit,
)
from clearq.envs.docker import CONTAINER_ENVS, CONTAINER_WORKSPACE
from clearq.envs.docker_bootstrap import (
    EXIT_COMMAND,
    EXIT_ENVIRONMENT,
    EXIT_PLAN,
    EXIT_SETUP_SCRIPT,
    EXIT_SYSTEM_PACKAGES,
)
from clearq.errors import LeaseLost, StoreError
from clearq.models import Fence, TaskStatus
from clearq.ports import ExecutorStore
from clearq.runtime.channel import CONTAINER_SOCKET
from clearq.runtime.executor import (
    Control,
    ExecutorConfig,
    Outcome,
    ReadyTask,
    Step,
    StepFailed,
)
from clearq.runtime.gangs import GANG_NETWORK, rank_environment, rank_suffix
from clearq.runtime.logsink import LogSink
from clearq.runtime.orphans import (
    LabelledContainers,
    owner_labels,
    remove_dead_agents_containers,
)
from clearq.runtime.process import describe_exit as describe_task_exit
from clearq.runtime.taskenv import with_sdk_requirements

log = logging.getLogger(__name__)

__all__ = ["DockerExecution", "gang_refusal"]

_WATCH_SECONDS = 0.2
_END_SECONDS = 30.0
"""How long a stopped container's exit code and last output are waited for."""
_STEPS = {
    EXIT_PLAN: Step.CONTAINER,
    EXIT_SYSTEM_PACKAGES: Step.SYSTEM_PACKAGES,
    EXIT_SETUP_SCRIPT: Step.SETUP,
    EXIT_ENVIRONMENT: Step.ENVIRONMENT,
    EXIT_COMMAND: Step.START,
}
_BOOTSTRAP = "clearq-docker: "
_GANG_NETWORK_REASON = (
    "a rank of a multi-node task shares the host's network to reach its other ranks"
)


def gang_refusal(network: str | None, *, allow_host_network: bool) -> str | None:
    """Why Docker mode in ``network`` takes no ranks of multi-node tasks; None: it takes them.

    A rank's container runs in the host's network (see the module's doc), which reaches
    the host's loopback services too: only where the operator runs every container there
    (``--docker-network host``) or allows it (``--allow-host-network``).
    """
    if network == GANG_NETWORK or allow_host_network:
        return None
    return (
        f"Docker mode in the {network or 'bridge'} network takes no ranks of multi-node tasks: "
        "a rank's container must share the host's network so that rank 0 listens at the "
        "host's address and every rank reaches the others; give --docker-network host or "
        "--allow-host-network to run them"
    )


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


class DockerExecution:
    """Runs claimed tasks past their workspace in containers (``clearq agent --docker``)."""

    def __init__(
        self,
        store: ExecutorStore,
        runner: DockerRunner,
        config: ExecutorConfig,
        *,
        artifacts_dir: Path | None = None,
        engine: ContainerEngine | None = None,
    ) -> None:
        """Start containers with ``runner``; ``engine`` is closed by :meth:`close`."""
        self._store = store
        self._runner = runner
        self._config = config
        self._artifacts_dir = artifacts_dir
        self._engine = engine

    @classmethod
    def connect(
        cls,
        store: ExecutorStore,
        settings: Settings,
        config: ExecutorConfig,
        *,
        image: str | None,
        network: str | None = None,
        allow_host_network: bool = False,
        allow_host_ipc: bool = False,
    ) -> DockerExecution:
        """Docker mode on this machine's engine; raises EngineUnavailable when none answers.

        ``image`` is the default for tasks that name none (else ``CLEARQ_DOCKER_IMAGE``);
        ``network`` the containers' network (default: bridge). Venvs get the SDK's
        dependencies at the agent's versions, as host envs do.
        """
        engine = connect_engine()
        _remove_dead_agents_containers(engine)
        base = DockerConfig.from_settings(settings)
        docker_config = dataclasses.replace(
            base,
            owner_labels=owner_labels(config.worker),
            default_image=image or settings.docker_image,
            stop_grace_seconds=config.stop_grace,
            clearq_requirements=(),  # with_sdk_requirements adds them, as on the host
            network_mode=network or base.network_mode,
            allow_host_network=allow_host_network,
            allow_host_ipc=allow_host_ipc,
        )
        runner = DockerRunner(engine, docker_config)
        return cls(store, runner, config, artifacts_dir=settings.artifacts_dir, engine=engine)

    def close(self) -> None:
        """Close the connection to the container engine."""
        if isinstance(self._engine, _Closable):
            self._engine.close()

    def run(self, ready: ReadyTask, control: Control, sink: LogSink) -> Outcome:
        """Run ``ready``'s setup, environment and process in a container, to their end."""
        try:
            run = self._start(ready, control, sink)
        except ContainerInterrupted:
            return _interrupted(control)
        try:
            return self._follow(ready, run, control, sink)
        except (ContainerError, OSError) as e:  # OSError: the SDK's connection errors
            message = f"the container could not be followed to its end: {e}"
            raise StepFailed(Step.CONTAINER, message, infra=_infra(e)) from e
        finally:
            _close(run, sink)

    def _start(self, ready: ReadyTask, control: Control, sink: LogSink) -> DockerRun:
        task = self._docker_task(ready)
        sink.agent("starting the task's container")
        try:
            return self._runner.start(task, on_output=sink, interrupted=lambda: control.interrupted)
        except ContainerInterrupted:
            raise
        except ContainerStepFailed as e:
            raise StepFailed(_STEPS.get(e.code, Step.ENVIRONMENT), str(e)) from e
        except ContainerError as e:
            raise StepFailed(Step.CONTAINER, str(e), infra=_infra(e)) from e
        except OSError as e:  # the docker SDK's connection errors, untranslated below
            message = f"the Docker engine failed: {e}"
            raise StepFailed(Step.CONTAINER, message, infra=True) from e

    def _follow(self, ready: ReadyTask, run: DockerRun, control: Control, sink: LogSink) -> Outcome:
        sink.agent(
            f"container {run.container_id[:12]} from image {run.image} ({run.image_id}); "
            f"environment {run.env_key or 'none (the image Python)'}"
        )
        self._record_runtime(ready.fence, run, ready.gpus, control)
        pump = _LogPump(run, sink)
        pump.start()
        code, outcome = self._supervise(run, control)
        pump.join(_END_SECONDS)
        if outcome is not None:
            return outcome
        return _ended(code, pump.bootstrap_said)

    def _docker_task(self, ready: ReadyTask) -> DockerTask:
        task, fence, gang = ready.task, ready.fence, ready.gang
        working_dir = ready.run_dir.relative_to(ready.code_dir).as_posix()
        labels = {"clearq.task": str(fence.task_id), "clearq.attempt": str(fence.attempt)}
        if gang is not None:
            labels["clearq.rank"] = str(gang.rank)
        return DockerTask(
            workspace=ready.code_dir,
            command=_command(ready),
            container=task.container,
            env=with_sdk_requirements(task.env),
            working_dir=working_dir,
            environment=self._environment(ready),
            gpus=ready.gpus,
            mounts=self._mounts(ready),
            name=f"clearq-{fence.task_id}-{fence.attempt}{rank_suffix(gang)}",
            labels=labels,
            network_mode=None if gang is None else GANG_NETWORK,
            network_reason="" if gang is None else _GANG_NETWORK_REASON,
        )

    def _environment(self, ready: ReadyTask) -> dict[str, str]:
        fence = ready.fence
        return {
            **ready.task.environment,
            **self._config.forced_environment,
            "CLEARQ_TASK_ID": str(fence.task_id),
            "CLEARQ_ATTEMPT": str(fence.attempt),
            "CLEARQ_WORKER": fence.worker or "",
            **ready.channel.environment(CONTAINER_SOCKET),
            **self._config.database_environment(),
            **({} if ready.gang is None else rank_environment(ready.gang, ready.gpus)),
        }

    def _mounts(self, ready: ReadyTask) -> tuple[Mount, ...]:
        fence = ready.fence
        # The channel is the task's door to the store; the database itself (an SQLite
        # file's folder) is mounted only on an agent that trusts its tasks with it.
        mounts = [Mount(ready.channel.path, CONTAINER_SOCKET, read_only=False)]
        if self._config.allow_controllers:
            mounts += database_mounts(self._config.database_url)
        if self._artifacts_dir is not None:
            # The task's local artifacts go straight into its own folder (the SDK writes
            # ARTIFACTS/<task id>/<name>/), mounted at its own path; the root is not.
            folder = self._artifacts_dir.expanduser().resolve() / str(fence.task_id)
            if not any(folder.is_relative_to(m.target) for m in mounts):
                folder.mkdir(parents=True, exist_ok=True)
                mounts.append(Mount(folder, str(folder), read_only=False))
        return tuple(mounts)

    def _supervise(self, run: DockerRun, control: Control) -> tuple[int | None, Outcome | None]:
        """The exit code of a run that ended by itself, or the outcome of one stopped."""
        grace = self._config.stop_grace
        while (code := run.wait(_WATCH_SECONDS)) is None:
            if control.lost:
                run.stop(0)
                return None, Outcome(None, reason="lease lost")
            if control.requeue_reason is not None:
                run.stop(grace)
                return None, Outcome(
                    None, reason=control.requeue_reason, requeue=True, preempted=True
                )
            if control.stop_reason is not None:
                run.stop(grace)
                code = run.wait(_END_SECONDS)
                return code, Outcome(TaskStatus.STOPPED, code, control.stop_reason)
        return code, None

    def _record_runtime(
        self, fence: Fence, run: DockerRun, gpus: tuple[str, ...] | None, control: Control
    ) -> None:
        facts = {
            "env": _env_facts(run, hit=run.env_hit, build_seconds=run.env_build_seconds),
            "docker": {
                "image": run.image,
                "image_id": run.image_id,
                "container_id": run.container_id,
            },
            "host": socket.gethostname(),
            "worker": self._config.worker,
            "gpus": list(gpus) if gpus is not None else None,
        }
        self._update_runtime(fence, facts, control)

    def _update_runtime(self, fence: Fence, facts: dict[str, object], control: Control) -> None:
        try:
            self._store.tasks.update_runtime(fence, facts)
        except LeaseLost:
            control.lose()
        except StoreError as e:
            _warn(f"cannot record the runtime of task {fence.task_id}: {e}")


class _LogPump(threading.Thread):
    """Copies a container's output into the task's log, noting the bootstrap's lines."""

    def __init__(self, run: DockerRun, sink: LogSink) -> None:
        super().__init__(name=f"clearq-docker-{run.container_id[:12]}", daemon=True)
        self._run = run
        self._sink = sink
        self.bootstrap_said: str | None = None
        """The bootstrap's last line: why a step failed, when one did."""

    def run(self) -> None:
        try:
            for stream, text in self._run.logs():
                self._sink(stream, text)
                if stream == "stderr" and text.startswith(_BOOTSTRAP):
                    self.bootstrap_said = text.strip().removeprefix(_BOOTSTRAP)
        except (ContainerError, OSError) as e:  # OSError: the SDK's connection errors
            self._sink.agent(f"the container's output could not be read to its end: {e}")


def _command(ready: ReadyTask) -> tuple[str, ...]:
    script = ready.task.script
    if script.module:
        return ("python3", "-m", script.module, *script.arguments)
    if script.entry_point is None:
        raise StepFailed(Step.START, "the task names no entry point and no module to run")
    return ("python3", f"{CONTAINER_WORKSPACE}/{script.entry_point}", *script.arguments)


def _interrupted(control: Control) -> Outcome:
    """How a run stopped while its environment was being built ends."""
    if control.lost:
        return Outcome(None, reason="lease lost")
    if control.requeue_reason is not None:
        return Outcome(None, reason=control.requeue_reason, requeue=True)
    return Outcome(TaskStatus.STOPPED, None, control.stop_reason or "stopped")


def _ended(code: int | None, bootstrap_said: str | None) -> Outcome:
    if code is None:  # the engine lost the container: nothing says how it ended
        raise StepFailed(Step.CONTAINER, "the container's exit code could not be read")
    if code == 0:
        return Outcome(TaskStatus.COMPLETED, 0, "")
    step = _STEPS.get(code)
    if step is None:
        return Outcome(TaskStatus.FAILED, code, describe_task_exit(code))
    said = (bootstrap_said or describe_exit(code) or "").replace(
        "(see above)", "(see the task's log)"
    )
    raise StepFailed(step, f"{said} (in the container, exit code {code})")


def _env_facts(run: DockerRun, *, hit: bool | None, build_seconds: float | None) -> object:
    if run.env_key is None:
        return {"key": None, "hit": True, "build_seconds": 0.0, "manager": "none"}
    return {
        "key": run.env_key,
        "hit": hit,
        "build_seconds": build_seconds,
        "manager": "pip",
        "python": f"{CONTAINER_ENVS}/{run.env_key}/bin/python",
    }


def _close(run: DockerRun, sink: LogSink) -> None:
    try:
        run.close()
    except ContainerError as e:
        sink.agent(f"could not remove container {run.container_id[:12]}: {e}")
        _warn(f"could not remove container {run.container_id[:12]}: {e}")


def _warn(text: str) -> None:
    log.warning("%s", text)


def _infra(error: Exception) -> bool:
    """True for a failure of the machine (the engine gone), not of the task's own request."""
    return isinstance(error, EngineUnavailable | OSError)


def _remove_dead_agents_containers(engine: ContainerEngine) -> None:
    """Containers left running by this host's dead agents go before this agent serves."""
    if not isinstance(engine, LabelledContainers):
        return
    try:
        removed = remove_dead_agents_containers(engine)
    except ContainerError as e:  # the agent can serve without: say so, go on
        log.warning("cannot look for dead agents' containers: %s", e)
        return
    for container_id, agent in removed:
        log.info("removed container %s of agent %s, which is gone", container_id[:12], agent)
