"""``clearq agent``: turn this machine into capacity for some queues."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.agent_detach import CHILD_FLAG, detach, pid_file, pid_path, stop_detached
from clearq.cli.context import CliContext, cli_context
from clearq.cli.output import say
from clearq.enums import ClaimOrder
from clearq.runtime.exits import describe_exits
from clearq.runtime.graces import DEFAULT_SHUTDOWN_GRACE_SECONDS, DEFAULT_STOP_GRACE_SECONDS

if TYPE_CHECKING:
    from clearq.runtime.agent import Agent


def agent_command(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="With --stop: the detached agent to stop (default: the only one).",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        list[str],
        typer.Option("--queue", "-q", help="A queue to serve (repeatable; order matters)."),
    ] = [],  # noqa: B006
    order: Annotated[
        ClaimOrder, typer.Option(help="strict: earlier queues first; round-robin: take turns.")
    ] = ClaimOrder.STRICT,
    create_queue: Annotated[
        bool,
        typer.Option("--create-queue", help="Create the queues that do not exist yet."),
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Worker name (host:NAME); default agent-<pid>.")
    ] = None,
    gpus: Annotated[
        str | None, typer.Option(help="GPUs this agent owns: 0,1 or all.", show_default=False)
    ] = None,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="Hide every GPU.")] = False,
    unchecked_gpus: Annotated[
        bool,
        typer.Option(
            "--unchecked-gpus",
            help="Take --gpus 0,1 as named, without looking for the devices (NVML).",
        ),
    ] = False,
    dynamic_gpus: Annotated[
        bool,
        typer.Option(
            "--dynamic-gpus", help="Hand each task distinct GPUs as its queue asks (--gpus)."
        ),
    ] = False,
    services_mode: Annotated[
        int, typer.Option("--services-mode", min=0, help="Run up to N tasks at once.")
    ] = 0,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help=f"Run one task to its end, then exit with how it ended: {describe_exits()}.",
        ),
    ] = False,
    idle_exit: Annotated[
        float | None,
        typer.Option(help="Exit after this many seconds with nothing to do.", min=0),
    ] = None,
    grace: Annotated[
        float, typer.Option(help="Seconds running tasks get to end when the agent stops.")
    ] = DEFAULT_SHUTDOWN_GRACE_SECONDS,
    stop_grace: Annotated[
        float, typer.Option(help="Seconds between SIGTERM and SIGKILL when stopping a task.")
    ] = DEFAULT_STOP_GRACE_SECONDS,
    skip_env: Annotated[
        bool,
        typer.Option("--skip-env", help="Run tasks with this agent's own Python; install nothing."),
    ] = False,
    keep_workspaces: Annotated[
        bool, typer.Option("--keep-workspaces", help="Keep each run's folder (debugging).")
    ] = False,
    allow_local_repositories: Annotated[
        bool,
        typer.Option(
            "--allow-local-repositories",
            help="Clone tasks' repositories from paths and file:// URLs on this machine.",
        ),
    ] = False,
    allow_controllers: Annotated[
        bool,
        typer.Option(
            "--allow-controllers",
            help=(
                "Give every task this agent runs the database URL: full SDK access, for "
                "pipeline and HPO controllers and services. Trusts its queues' tasks as the agent."
            ),
        ),
    ] = False,
    docker: Annotated[
        str | None,
        typer.Option(
            "--docker",
            metavar="IMAGE",
            help="Run every task in a container: the task's image, else IMAGE "
            "('': CLEARQ_DOCKER_IMAGE).",
            show_default=False,
        ),
    ] = None,
    env: Annotated[
        list[str],
        typer.Option(
            "--env",
            metavar="NAME=VALUE",
            help="A variable for every task (repeatable); wins over the task's own.",
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    secret_env: Annotated[
        list[str],
        typer.Option(
            "--secret-env",
            metavar="NAME=VALUE",
            help="As --env, and its value is masked in every task's stored log.",
        ),
    ] = [],  # noqa: B006
    env_file: Annotated[
        list[Path],
        typer.Option(
            "--env-file",
            metavar="PATH",
            help="NAME=VALUE lines for every task ('secret NAME=VALUE': masked in logs).",
        ),
    ] = [],  # noqa: B006
    task_user: Annotated[
        str | None,
        typer.Option(
            "--task-user",
            metavar="NAME",
            help="Host mode, an agent running as root: run every task as this OS user "
            "(without it a task is as trusted as the agent).",
            show_default=False,
        ),
    ] = None,
    docker_network: Annotated[
        str | None,
        typer.Option(
            "--docker-network",
            metavar="NAME",
            help="Docker mode: the containers' network (default bridge; host shares the "
            "host's, loopback services included). Ranks of multi-node tasks run in the "
            "host's network: only with host here or --allow-host-network.",
            show_default=False,
        ),
    ] = None,
    allow_host_network: Annotated[
        bool,
        typer.Option(
            "--allow-host-network",
            help="Docker mode: tasks may ask for --network host, and ranks of multi-node "
            "tasks run there (rank 0 listens at this host's address).",
        ),
    ] = False,
    allow_host_ipc: Annotated[
        bool,
        typer.Option("--allow-host-ipc", help="Docker mode: tasks may ask for --ipc host."),
    ] = False,
    uptime: Annotated[
        list[str],
        typer.Option(
            "--uptime",
            metavar="WINDOW",
            help="Claim only inside this window (repeatable): 'mon-fri 20:00-08:00', "
            "'sat,sun', '09:00-17:00 Europe/Berlin'. Times are this machine's local time "
            "unless a zone ends the window. Outside, running tasks go on.",
        ),
    ] = [],  # noqa: B006
    downtime: Annotated[
        list[str],
        typer.Option(
            "--downtime",
            metavar="WINDOW",
            help="Claim nothing inside this window (repeatable; as --uptime).",
        ),
    ] = [],  # noqa: B006
    detached: Annotated[
        bool,
        typer.Option(
            "--detached",
            help="Serve in the background: print the pid, name and log file "
            "($CLEARQ_HOME/agents/NAME.log) once serving, and return.",
        ),
    ] = False,
    stop: Annotated[
        bool,
        typer.Option(
            "--stop",
            help="Stop a detached agent of this machine (SIGTERM, as Ctrl-C) and wait for it.",
        ),
    ] = False,
    detached_child: Annotated[bool, typer.Option(CHILD_FLAG, hidden=True)] = False,
) -> None:
    """Serve queues: claim tasks, rebuild their code and environment, run and report them."""
    # The runtime loads only once the flags are read (`clearq agent --help` stays light).
    from clearq.cli.agent_checks import agent_gpus, claim_windows, ensure_queues
    from clearq.cli.diagnostics import show_diagnostics
    from clearq.cli.execution import DockerOptions, build_executor, gang_refusal_of
    from clearq.runtime.agent import Agent, AgentOptions, worker_id
    from clearq.runtime.executor import ExecutorConfig
    from clearq.runtime.forced_env import parse_forced_environment
    from clearq.runtime.gitcreds import check_git_settings
    from clearq.runtime.outage import when_reachable
    from clearq.runtime.taskuser import TaskUser
    from clearq.secrets import known_secrets

    context = cli_context(ctx)
    if stop:
        stop_detached(context.settings().home_dir, target or name, say=say)
        return
    if target is not None:
        raise typer.BadParameter(f"{target!r}: a NAME is only for --stop (use --name)")
    if not queue:
        raise typer.BadParameter("an agent needs at least one queue: give --queue NAME")
    windows = claim_windows(uptime, downtime)
    devices = agent_gpus(gpus, cpu_only=cpu_only, dynamic=dynamic_gpus, unchecked=unchecked_gpus)
    options = AgentOptions(
        queues=tuple(queue),
        order=order,
        name=name,
        gpus=devices,
        dynamic_gpus=dynamic_gpus,
        services=services_mode,
        once=once,
        idle_exit=idle_exit,
        shutdown_grace=grace,
        windows=windows or None,
    )
    settings = context.settings()
    if detached:
        _detach(context, name)
        return
    forced = parse_forced_environment(env, secret_env, env_file)
    if task_user is not None and docker is not None:
        raise typer.BadParameter("--task-user is for host mode: leave out --docker")
    user = None if task_user is None else TaskUser.lookup(task_user)
    check_git_settings(os.environ)  # a bad credentials file stops the agent, not each task
    config = ExecutorConfig(
        home=settings.home_dir,
        database_url=settings.resolved_database_url,
        database_pgbouncer=settings.database_pgbouncer,
        worker=worker_id(name),
        stop_grace=stop_grace,
        keep_workspaces=keep_workspaces,
        allow_local_repositories=allow_local_repositories or settings.allow_local_repositories,
        secrets=known_secrets(settings.resolved_database_url, os.environ, forced.secrets),
        forced_environment=forced.values,
        task_user=user,
        allow_controllers=allow_controllers,
    )
    show_diagnostics("clearq agent")
    with ExitStack() as stack:
        if detached_child:  # --stop finds it by this file, even before it serves
            pid_name = name or f"agent-{os.getpid()}"
            stack.enter_context(pid_file(pid_path(settings.home_dir, pid_name)))
        # Started before its database (a machine booting, a server restarting): wait.
        store = when_reachable(lambda: stack.enter_context(context.store()), _say_agent)
        docker_options = DockerOptions(
            network=(docker_network or "").strip() or None,
            allow_host_network=allow_host_network,
            allow_host_ipc=allow_host_ipc,
        )
        executor = build_executor(
            store,
            settings,
            config,
            docker=docker,
            skip_env=skip_env,
            stack=stack,
            docker_options=docker_options,
        )
        for made in ensure_queues(store.queues, queue, create=create_queue):
            typer.echo(f"clearq agent: created queue {made}", err=True)
        if (refusal := gang_refusal_of(docker, docker_options)) is not None:
            typer.echo(f"clearq agent: {refusal}", err=True)
        agent = Agent(store, executor, options, gangs=executor.gangs)
        _stop_on_signals(agent)
        raise typer.Exit(agent.run())


def _detach(context: CliContext, name: str | None) -> None:
    settings = context.settings()
    with context.store() as store:

        def serving(worker: str) -> bool:
            ids = [w.id for w in store.workers.list(include_gone=False)]
            return any(i == worker or i.startswith(f"{worker}:") for i in ids)

        worker, pid, log = detach(sys.argv[1:], home=settings.home_dir, name=name, serving=serving)
    say(f"started agent {worker} (pid {pid}), logging to {log}")
    say(f"stop it with `clearq agent --stop {worker.partition(':')[2]}`")


def _say_agent(text: str) -> None:
    typer.echo(f"clearq agent: {text}", err=True)


def _stop_on_signals(agent: Agent) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        agent.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
