"""The values Docker mode takes: how an agent runs containers, and one task to run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clearq.config import Settings, find_ca_bundle, package_index_environment
from clearq.envs.docker_deps import agent_clearq
from clearq.envs.docker_spec import Mount
from clearq.models import Container, EnvSpec

__all__ = ["DEFAULT_NETWORK_MODE", "DockerConfig", "DockerTask", "database_mounts"]

DEFAULT_NETWORK_MODE = "bridge"
"""Docker's own network: egress (package indexes) but not the host's loopback services."""


@dataclass(frozen=True, kw_only=True)
class DockerConfig:
    """How an agent runs containers; ``from_settings`` fills it from clearq's settings."""

    envs_dir: Path
    """The env cache folder on the host, mounted at /clearq/envs."""
    default_image: str | None = None
    volume_roots: tuple[Path, ...] = ()
    stop_grace_seconds: float = 10.0
    network_mode: str = DEFAULT_NETWORK_MODE
    """The network of every container (the build's too) unless the task names one."""
    allow_host_network: bool = False
    """A task may ask for ``--network host``."""
    allow_host_ipc: bool = False
    """A task may ask for ``--ipc host``."""
    pull: bool = True
    """Pull an image that is not on the machine before giving up."""
    carried_environment: Mapping[str, str] = field(default_factory=dict)
    """Package index settings passed in as they are (``PIP_INDEX_URL``, ...)."""
    ca_bundle: Path | None = None
    clearq_package: Path | None = None
    """The agent's ``clearq`` package folder, mounted for tasks to import; None: not."""
    clearq_requirements: tuple[str, ...] = ()
    """clearq's own dependencies, installed into every venv along with the task's."""
    system_site_packages: bool = True
    owner_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels on every container started (the agent's own: who to clean up after)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        with_clearq: bool = True,
    ) -> DockerConfig:
        """The agent's Docker settings, package index variables and CA bundle."""
        package, requirements = agent_clearq() if with_clearq else (None, ())
        return cls(
            envs_dir=settings.docker_envs_dir,
            default_image=settings.docker_image,
            volume_roots=settings.docker_volume_roots,
            stop_grace_seconds=settings.docker_stop_grace_seconds,
            carried_environment=package_index_environment(environ),
            ca_bundle=find_ca_bundle(settings, environ),
            clearq_package=package,
            clearq_requirements=requirements,
        )


@dataclass(frozen=True, kw_only=True)
class DockerTask:
    """One task to run in a container."""

    workspace: Path
    """The task's code on the host (mounted read-write at /clearq/workspace)."""
    command: tuple[str, ...]
    """The argv to run in the venv, e.g. ``("python", "train.py", "--lr", "0.1")``."""
    container: Container = field(default_factory=Container)
    env: EnvSpec = field(default_factory=EnvSpec)
    working_dir: str = "."
    """Relative to the workspace."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Variables from the agent (``CLEARQ_TASK_ID``, the database URL, ...); they win."""
    gpus: tuple[str, ...] | None = None
    """GPU ids the agent owns for this task; None or empty: no GPU."""
    mounts: tuple[Mount, ...] = ()
    """Extra mounts the agent itself wants (an SQLite database, ...)."""
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    network_mode: str | None = None
    """The network the agent needs this container in (a rank of a multi-node task: the
    host's), whatever the operator's default; a task's own other ``--network`` is refused.
    None: the task's ``--network``, else the config's."""
    network_reason: str = ""
    """Why the agent needs ``network_mode``, said when the task's own is refused."""


def database_mounts(database_url: str) -> tuple[Mount, ...]:
    """Mounts that let a task reach an SQLite database at the agent's own URL.

    The database file's folder is bound read-write at the same path (SQLite writes its
    journal beside the file). Other databases are reached over the host's network and
    need none.
    """
    if not database_url.startswith(_SQLITE_FILE_PREFIX):
        return ()
    path = database_url.removeprefix(_SQLITE_FILE_PREFIX).split("?", 1)[0]
    if not path or path == ":memory:":
        return ()
    folder = Path(path).expanduser().resolve().parent
    return (Mount(folder, str(folder), read_only=False),)


_SQLITE_FILE_PREFIX = "sqlite:///"
