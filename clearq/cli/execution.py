"""How the commands that run tasks here (``clearq agent``, ``clearq task run``) build
their executor: the host's cached environments, this Python (``--skip-env``), or Docker."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from clearq.config import Settings
from clearq.runtime import Executor, ExecutorConfig, SystemInterpreter
from clearq.runtime.executor import AfterWorkspace
from clearq.runtime.taskenv import EnvProvider
from clearq.scheduler import Store


@dataclass(frozen=True, kw_only=True)
class DockerOptions:
    """What the operator allows containers (``clearq agent --docker-network`` and co)."""

    network: str | None = None
    """Every container's network; None: Docker's bridge."""
    allow_host_network: bool = False
    allow_host_ipc: bool = False


def build_executor(
    store: Store,
    settings: Settings,
    config: ExecutorConfig,
    *,
    docker: str | None,
    skip_env: bool,
    stack: ExitStack,
    docker_options: DockerOptions | None = None,
) -> Executor:
    """The executor the flags ask for; Docker mode is checked now (no engine: an error)."""
    options = docker_options or DockerOptions()
    in_docker = None if docker is None else _docker(store, settings, config, docker, options, stack)
    envs = SystemInterpreter() if skip_env or in_docker is not None else _host_envs(settings)
    # Docker mode runs gang ranks only where their containers may share the host's network.
    gangs = store.gangs if gang_refusal_of(docker, options) is None else None
    return Executor(
        store, envs, config, channel_store=store, after_workspace=in_docker, gangs=gangs
    )


def gang_refusal_of(docker: str | None, options: DockerOptions) -> str | None:
    """Why these flags run no ranks of multi-node tasks; None: they run them."""
    if docker is None:
        return None
    from clearq.runtime.dockerexec import gang_refusal

    return gang_refusal(options.network, allow_host_network=options.allow_host_network)


def _host_envs(settings: Settings) -> EnvProvider:
    from clearq.runtime.hostenvs import HostEnvs

    return HostEnvs.from_settings(settings)


def _docker(
    store: Store,
    settings: Settings,
    config: ExecutorConfig,
    image: str,
    options: DockerOptions,
    stack: ExitStack,
) -> AfterWorkspace:
    """Docker mode, checked now: no engine fails the start with the reason."""
    from clearq.runtime.dockerexec import DockerExecution

    execution = DockerExecution.connect(
        store,
        settings,
        config,
        image=image.strip() or None,
        network=options.network,
        allow_host_network=options.allow_host_network,
        allow_host_ipc=options.allow_host_ipc,
    )
    stack.callback(execution.close)
    return execution
