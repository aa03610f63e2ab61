"""The subset of ``docker run`` flags a task may ask for, parsed into checked values.

A task's extra docker arguments are data written by whoever made the task; the agent
runs them on its own machine. They never reach a shell or the ``docker`` command line:
each accepted flag is parsed into a value the runner hands to the Docker SDK, and any
other flag is refused with DockerArgsRefused naming it. Accepted::

    --shm-size SIZE             shared memory, e.g. 8g (PyTorch data loaders need it)
    --ipc MODE                  private | shareable | none; host only where the agent's
                                operator allows it (the host's IPC namespace and /dev/shm)
    -e, --env NAME=VALUE        an environment variable; a value is required (a bare
                                NAME would copy the agent's own), CLEARQ_* is reserved
    --network NAME              bridge (the default) | none | a user network; host only
                                where the agent's operator allows it (the host's loopback
                                services)
    -v, --volume SRC:DST[:MODE] SRC: an existing host path under one of the agent's
                                volume roots (none by default); MODE ro (default) | rw
    -m, --memory SIZE           memory limit
    --cpus N                    CPU limit
    --gpus VALUE                accepted for ClearML compatibility and ignored: the
                                agent's GPU allotment alone decides the GPUs

Each flag may be written ``--flag value`` or ``--flag=value``; short ones also
``-e value`` and ``-evalue``. A string of arguments is split like a shell would split
it (``shlex``), without running one.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from clearq.envs.docker_spec import Mount
from clearq.errors import DockerArgsRefused

__all__ = [
    "RESERVED_TARGET",
    "DockerArgs",
    "check_image_name",
    "check_system_packages",
    "parse_docker_args",
]

RESERVED_TARGET = PurePosixPath("/clearq")
"""clearq's own mounts live here in the container; a task's volumes may not."""

_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?[bkmg]?b?", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IPC_MODES = frozenset({"host", "private", "shareable", "none"})
_DEB_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
_ALIASES = {
    "-e": "--env",
    "-v": "--volume",
    "-m": "--memory",
}
_ACCEPTED = "--shm-size, --ipc, -e/--env, --network, -v/--volume, -m/--memory, --cpus, --gpus"


@dataclass(frozen=True, kw_only=True)
class DockerArgs:
    """A task's extra docker arguments, checked; None means the runner's default."""

    environment: dict[str, str] = field(default_factory=dict)
    volumes: tuple[Mount, ...] = ()
    shm_size: str | None = None
    ipc_mode: str | None = None
    network_mode: str | None = None
    mem_limit: str | None = None
    nano_cpus: int | None = None
    gpus_requested: str | None = None
    """What ``--gpus`` said, kept to report it; it does not choose the GPUs."""


def parse_docker_args(
    arguments: str | Sequence[str],
    *,
    volume_roots: Iterable[Path] = (),
    allow_host_ipc: bool = False,
    allow_host_network: bool = False,
) -> DockerArgs:
    """``arguments`` (an argv list, or one string split like a shell would) checked.

    ``volume_roots`` are the host folders a ``-v`` source may lie under; ``--ipc host``
    and ``--network host`` are accepted only where ``allow_host_ipc`` and
    ``allow_host_network`` say so. Raises DockerArgsRefused for a flag outside the
    accepted subset or a value it cannot use.
    """
    tokens = shlex.split(arguments) if isinstance(arguments, str) else list(arguments)
    roots = tuple(Path(os.path.realpath(root)) for root in volume_roots)
    result = DockerArgs()
    position = 0
    while position < len(tokens):
        flag, value, position = _next_flag(tokens, position)
        handler = _HANDLERS.get(flag)
        if handler is None:
            raise DockerArgsRefused(
                f"docker argument {flag!r} is not allowed for a task; clearq accepts {_ACCEPTED}"
            )
        result = handler(result, value, roots)
    if result.ipc_mode == "host" and not allow_host_ipc:
        raise DockerArgsRefused(
            "--ipc host is not allowed on this agent: it shares the host's IPC namespace and "
            "/dev/shm (its operator allows it with clearq agent --allow-host-ipc); for "
            "PyTorch data loaders give --shm-size 8g instead"
        )
    if result.network_mode == "host" and not allow_host_network:
        raise DockerArgsRefused(
            "--network host is not allowed on this agent: it reaches the host's loopback "
            "services (its operator allows it with clearq agent --allow-host-network)"
        )
    return result


def _next_flag(tokens: list[str], position: int) -> tuple[str, str, int]:
    token = tokens[position]
    if not token.startswith("-") or token in ("-", "--"):
        raise DockerArgsRefused(
            f"docker argument {token!r} is not a flag; give flags only (the image and the "
            "command come from the task)"
        )
    if token.startswith("--"):
        flag, equals, value = token.partition("=")
    else:
        flag, value = token[:2], token[2:].removeprefix("=")
        equals = "=" if value else ""
    flag = _ALIASES.get(flag, flag)
    if equals or value:
        return flag, value, position + 1
    if flag not in _HANDLERS:
        return flag, "", position + 1
    if position + 1 >= len(tokens):
        raise DockerArgsRefused(f"docker argument {flag} needs a value")
    return flag, tokens[position + 1], position + 2


def _size(flag: str, value: str) -> str:
    if not _SIZE.fullmatch(value):
        raise DockerArgsRefused(f"{flag} {value!r} is not a size like 8g or 512m")
    return value.lower()


def _shm_size(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    return replace(args, shm_size=_size("--shm-size", value))


def _memory(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    return replace(args, mem_limit=_size("--memory", value))


def _cpus(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    try:
        cpus = float(value)
    except ValueError:
        cpus = 0.0
    if not 0 < cpus < 4096:
        raise DockerArgsRefused(f"--cpus {value!r} is not a number of CPUs like 2 or 0.5")
    return replace(args, nano_cpus=round(cpus * 1e9))


def _ipc(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    if value not in _IPC_MODES:
        raise DockerArgsRefused(f"--ipc {value!r} is not allowed; use one of {sorted(_IPC_MODES)}")
    return replace(args, ipc_mode=value)


def _network(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    if not _NETWORK.fullmatch(value):
        raise DockerArgsRefused(
            f"--network {value!r} is not allowed; use bridge, none or a network's name"
        )
    return replace(args, network_mode=value)


def _env(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    name, equals, text = value.partition("=")
    if not equals:
        raise DockerArgsRefused(
            f"--env {value!r} needs a value (NAME=VALUE): a bare name would copy the agent's own"
        )
    if not _ENV_NAME.fullmatch(name):
        raise DockerArgsRefused(f"--env {name!r} is not an environment variable name")
    if name.upper().startswith("CLEARQ_"):
        raise DockerArgsRefused(f"--env {name}: CLEARQ_* variables are set by the agent only")
    return replace(args, environment={**args.environment, name: text})


def _gpus(args: DockerArgs, value: str, _: tuple[Path, ...]) -> DockerArgs:
    return replace(args, gpus_requested=value)


def _volume(args: DockerArgs, value: str, roots: tuple[Path, ...]) -> DockerArgs:
    parts = value.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise DockerArgsRefused(f"--volume {value!r} must be SOURCE:TARGET or SOURCE:TARGET:ro|rw")
    source, target = Path(parts[0]), PurePosixPath(parts[1])
    read_only = len(parts) == 2 or parts[2] == "ro"
    if not source.is_absolute():
        raise DockerArgsRefused(
            f"--volume source {parts[0]!r} must be an absolute host path (named volumes are "
            "not allowed)"
        )
    real = Path(os.path.realpath(source))
    if not any(real == root or real.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "none (CLEARQ_DOCKER_VOLUME_ROOTS)"
        raise DockerArgsRefused(
            f"--volume source {parts[0]!r} is outside the folders this agent lets tasks "
            f"mount: {allowed}"
        )
    if not real.exists():
        raise DockerArgsRefused(f"--volume source {parts[0]!r} does not exist on this machine")
    _check_target(value, target)
    mount = Mount(source=real, target=str(target), read_only=read_only)
    return replace(args, volumes=(*args.volumes, mount))


def _check_target(value: str, target: PurePosixPath) -> None:
    if not target.is_absolute() or ".." in target.parts or target == PurePosixPath("/"):
        raise DockerArgsRefused(f"--volume {value!r}: the target must be an absolute folder")
    if target == RESERVED_TARGET or target.is_relative_to(RESERVED_TARGET):
        raise DockerArgsRefused(f"--volume {value!r}: {RESERVED_TARGET} is clearq's own")


_Handler = Callable[[DockerArgs, str, tuple[Path, ...]], DockerArgs]
_HANDLERS: dict[str, _Handler] = {
    "--shm-size": _shm_size,
    "--ipc": _ipc,
    "--env": _env,
    "--network": _network,
    "--net": _network,
    "--volume": _volume,
    "--memory": _memory,
    "--cpus": _cpus,
    "--gpus": _gpus,
}


def check_system_packages(names: Iterable[str]) -> tuple[str, ...]:
    """Debian package names (optionally ``name=version``) checked for ``apt-get install``.

    Raises DockerArgsRefused for a name apt would read as an option or a pattern.
    """
    checked = tuple(name.strip() for name in names if name.strip())
    for name in checked:
        if not _DEB_PACKAGE.fullmatch(name):
            raise DockerArgsRefused(
                f"system package {name!r} is not a Debian package name (like 'libgl1' or "
                "'curl=7.88.1-10')"
            )
    return checked


def check_image_name(image: str) -> str:
    """``image`` stripped, checked to look like an image reference."""
    name = image.strip()
    if not _IMAGE.fullmatch(name) or len(name) > 512:
        raise DockerArgsRefused(f"image {image!r} is not an image name like 'python:3.11-slim'")
    return name
