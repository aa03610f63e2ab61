"""``clearq task run ID``: run one named queued task here, now, and exit with its outcome.

The hook of every outside launcher (``clearq slurm``, a Kubernetes Job): the task is
claimed out of its queue with the agents' fenced claim, attempt and lease, and runs with
the options an agent gives its tasks (workspace, environment or Docker). SIGTERM or
SIGINT preempts it: the task gets SIGTERM and its grace period, then goes back to the
front of its queue without spending an attempt.
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import say
from clearq.errors import InvalidInput
from clearq.runtime.graces import DEFAULT_STOP_GRACE_SECONDS

if TYPE_CHECKING:
    from clearq.runtime.runone import RunEnd, TaskRunner


def run_command(
    ctx: typer.Context,
    task_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The queued task's id, or a unique prefix of it.", show_default=False
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Worker name (host:NAME); default run-<pid>.")
    ] = None,
    gpus: Annotated[
        str | None, typer.Option(help="GPUs the task may use: 0,1.", show_default=False)
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Hide every GPU.")] = False,
    stop_grace: Annotated[
        float, typer.Option(help="Seconds between SIGTERM and SIGKILL when stopping the task.")
    ] = DEFAULT_STOP_GRACE_SECONDS,
    skip_env: Annotated[
        bool,
        typer.Option("--skip-env", help="Run the task with this Python; install nothing."),
    ] = False,
    keep_workspaces: Annotated[
        bool, typer.Option("--keep-workspaces", help="Keep the run's folder (debugging).")
    ] = False,
    allow_local_repositories: Annotated[
        bool,
        typer.Option(
            "--allow-local-repositories",
            help="Clone the task's repository from a path or file:// URL on this machine.",
        ),
    ] = False,
    allow_controllers: Annotated[
        bool,
        typer.Option(
            "--allow-controllers",
            help=(
                "Give every task run here the database URL: full SDK access, for pipeline "
                "and HPO controllers and services. Trusts the task's code as the agent itself."
            ),
        ),
    ] = False,
    docker: Annotated[
        str | None,
        typer.Option(
            "--docker",
            metavar="IMAGE",
            help="Run the task in a container: its image, else IMAGE ('': CLEARQ_DOCKER_IMAGE).",
            show_default=False,
        ),
    ] = None,
    docker_network: Annotated[
        str | None,
        typer.Option(
            "--docker-network",
            metavar="NAME",
            help="Docker mode: the container's network (default bridge; host shares the "
            "host's, loopback services included). A rank of a multi-node task runs in the "
            "host's network: only with host here.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a queued task here and now (claimed out of its queue); exit with its outcome.

    Exit codes as `clearq agent --once`'s: 0 completed, 3 failed, 4 stopped, 5 back in its
    queue (preempted), 6 its attempt was lost; 1 the task could not be claimed (the error
    says why).
    """
    # The runtime loads only once the flags are read (`--help` stays light).
    from clearq.cli.agent_checks import agent_gpus
    from clearq.cli.diagnostics import show_diagnostics
    from clearq.cli.execution import DockerOptions, build_executor, gang_refusal_of
    from clearq.runtime.executor import ExecutorConfig
    from clearq.runtime.runone import TaskRunner, run_worker_id
    from clearq.secrets import known_secrets

    devices = agent_gpus(gpus, cpu_only=cpu_only, dynamic=False, unchecked=False)
    context = cli_context(ctx)
    settings = context.settings()
    worker = run_worker_id(name)
    config = ExecutorConfig(
        home=settings.home_dir,
        database_url=settings.resolved_database_url,
        database_pgbouncer=settings.database_pgbouncer,
        worker=worker,
        stop_grace=stop_grace,
        keep_workspaces=keep_workspaces,
        allow_local_repositories=allow_local_repositories or settings.allow_local_repositories,
        secrets=known_secrets(settings.resolved_database_url, os.environ),
        allow_controllers=allow_controllers,
    )
    show_diagnostics("clearq agent")
    with context.store() as store, ExitStack() as stack:
        found = resolve_task_id(store, task_id)
        options = DockerOptions(network=(docker_network or "").strip() or None)
        refusal = gang_refusal_of(docker, options)
        if refusal is not None and (nodes := store.tasks.get(found).nodes) > 1:
            raise InvalidInput(f"task {found} runs on {nodes} nodes at once: {refusal}")
        executor = build_executor(
            store,
            settings,
            config,
            docker=docker,
            skip_env=skip_env,
            stack=stack,
            docker_options=options,
        )
        runner = TaskRunner(store, executor, worker=worker, gpus=devices, gangs=executor.gangs)
        _preempt_on_signals(runner)
        end = runner.run(found)
    say(_summary(end))
    raise typer.Exit(end.exit_code)


def _summary(end: RunEnd) -> str:
    task, outcome = end.claim.task_id, end.outcome
    if not end.recorded:
        return (
            f"task {task}: attempt {end.claim.attempt} is no longer this run's ({outcome.reason})"
        )
    if outcome.requeue:
        why = f"preempted: {outcome.reason}" if outcome.preempted else outcome.reason
        return f"task {task} is queued again: {why}"
    detail = f": {outcome.reason}" if outcome.reason else ""
    gang = end.claim.gang
    rank = "" if gang is None else f" (rank {gang.rank} of {gang.size})"
    return f"task {task}{rank} {outcome.status}{detail}"


def _preempt_on_signals(runner: TaskRunner) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        runner.preempt(f"{signal.Signals(signum).name} received by `clearq task run`")

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
