"""What Docker mode asks of a container engine: the values and the small interface.

``ContainerSpec`` says everything about one container to start; ``ContainerEngine``
starts it and hands back a ``ContainerHandle`` to follow, wait for, stop and remove it.
``clearq.envs.docker_engine.DockerEngine`` is the real adapter (the only module that
imports the ``docker`` SDK); the runner in ``clearq.envs.docker`` takes any engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["ContainerEngine", "ContainerHandle", "ContainerSpec", "Mount", "Stream"]

Stream = str
"""``"stdout"`` or ``"stderr"``."""


@dataclass(frozen=True)
class Mount:
    """A host path bound into a container."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """One container to start: its image, command, mounts, environment and limits.

    ``command`` is an argv list, never a shell string. ``gpus`` holds the device ids the
    container may use (None or empty: no GPU at all).
    """

    image: str
    command: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    working_dir: str | None = None
    network_mode: str = "bridge"
    gpus: tuple[str, ...] | None = None
    shm_size: str | None = None
    ipc_mode: str | None = None
    mem_limit: str | None = None
    nano_cpus: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None


class ContainerHandle(Protocol):
    """A started container."""

    @property
    def id(self) -> str:
        """The engine's id of the container."""
        ...

    def output(self) -> Iterator[tuple[Stream, bytes]]:
        """Its output as written, from the start, until the container ends."""
        ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it ends; None if ``timeout`` seconds pass first."""
        ...

    def stop(self, grace: float) -> None:
        """SIGTERM now, SIGKILL after ``grace`` seconds; nothing if it has ended."""
        ...

    def remove(self) -> None:
        """Remove it (killing it first if it still runs); nothing if it is gone."""
        ...


class ContainerEngine(Protocol):
    """Where containers run."""

    def image_id(self, image: str, *, pull: bool) -> str:
        """The id of ``image`` on this machine, pulling it first if missing and ``pull``.

        Raises ImageNotFound when it is not here and cannot be pulled.
        """
        ...

    def start(self, spec: ContainerSpec) -> ContainerHandle:
        """Create and start a container as ``spec`` says."""
        ...
