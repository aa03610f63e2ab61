"""Docker mode: run one task's environment and process inside a container.

``DockerRunner.start(DockerTask(...))`` starts a container from the task's image (or
the agent's default) and returns a ``DockerRun`` to follow its output, wait for its exit
code, stop it and remove it. The container runs ``clearq.envs.docker_bootstrap`` with
the image's own ``python3``; that installs the system packages, runs the setup script,
takes a venv from the env cache (building it once per key, under a lock) and runs the
task's command. In the container::

    /clearq/workspace   the task's code (read-write); the command runs in it (its
                        working folder), both on PYTHONPATH before the task's own entries
    /clearq/control     plan.json, setup.sh, requirements.txt for this run (read-only)
    /clearq/bootstrap.py  the bootstrap (read-only)
    /clearq/envs        the env cache, read-only (``clearq.envs.docker_envbuild`` builds a
                        missing venv first, in a container of its own)
    /clearq/certs/ca-certificates.crt  the agent's CA bundle (read-only), when it has one
    /clearq/lib/clearq  the agent's own clearq package (read-only), on PYTHONPATH

The env cache key is the image's id plus the requirements (canonical: stripped, sorted,
deduplicated), the index URLs and the clearq requirements: a new image or a new list
builds a new venv, the same pair reuses it; with nothing to install there is no venv
and the command runs with the image's own Python. Venvs see the image's site-packages, so
what a CUDA image ships (torch, ...) is not downloaded again.

The network is Docker's bridge by default: a task reaches package indexes and the
internet but not the host's loopback services. The host's network (``--network host``
in the task's arguments) and IPC namespace (``--ipc host``) only where the agent's
operator allows them (``DockerConfig.allow_host_network``, ``allow_host_ipc``), or
where the agent itself needs a network (``DockerTask.network_mode``: the rank of a
multi-node task runs in the host's, which the agent takes only where its operator allows
the host's network; a task's own other ``--network`` is then refused). The
agent's package index variables and its CA bundle go in, so pip and uv inside trust
what the agent trusts. clearq itself is never installed by name from an index: the
agent's package folder is mounted read-only and put on ``PYTHONPATH``, and only its
dependencies are installed into the venv.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from clearq.envs import docker_bootstrap
from clearq.envs.docker_args import (
    check_image_name,
    check_system_packages,
    parse_docker_args,
)
from clearq.envs.docker_config import DockerConfig, DockerTask, database_mounts
from clearq.envs.docker_deps import checked_requirements, index_args
from clearq.envs.docker_envbuild import BUILDS_DIRNAME, EnvReady, ensure_env
from clearq.envs.docker_run import DockerRun
from clearq.envs.docker_spec import ContainerEngine, ContainerSpec, Mount
from clearq.errors import ContainerError, DockerArgsRefused
from clearq.models import Container, EnvSpec

__all__ = [
    "CONTAINER_CA_BUNDLE",
    "CONTAINER_WORKSPACE",
    "DockerConfig",
    "DockerRun",
    "DockerRunner",
    "DockerTask",
    "connect_engine",
    "database_mounts",
    "describe_exit",
]

CONTAINER_ROOT = "/clearq"
CONTAINER_WORKSPACE = f"{CONTAINER_ROOT}/workspace"
CONTAINER_CONTROL = f"{CONTAINER_ROOT}/control"
CONTAINER_ENVS = f"{CONTAINER_ROOT}/envs"
CONTAINER_BOOTSTRAP = f"{CONTAINER_ROOT}/bootstrap.py"
CONTAINER_CA_BUNDLE = f"{CONTAINER_ROOT}/certs/ca-certificates.crt"
CONTAINER_LIB = f"{CONTAINER_ROOT}/lib"
_KEY_VERSION = 1
_PYTHON_PROBE = "import sys; sys.exit(sys.version_info < (3, 7))"
_PROBE_SECONDS = 60.0
_DROPPED_VARIABLES = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
"""The host's GPU numbering means nothing inside: the device requests choose the GPUs."""
_EXIT_REASONS = {
    docker_bootstrap.EXIT_PLAN: "the container could not read its plan",
    docker_bootstrap.EXIT_SYSTEM_PACKAGES: "system packages could not be installed",
    docker_bootstrap.EXIT_SETUP_SCRIPT: "the setup script failed",
    docker_bootstrap.EXIT_ENVIRONMENT: "the Python environment could not be built",
    docker_bootstrap.EXIT_COMMAND: "the task's command could not be started",
}


def describe_exit(code: int) -> str | None:
    """What failed before the task ran, for a bootstrap exit code; None for the task's own."""
    return _EXIT_REASONS.get(code)


class DockerRunner:
    """Starts tasks' containers on a ContainerEngine."""

    def __init__(self, engine: ContainerEngine, config: DockerConfig) -> None:
        """Run on ``engine`` as ``config`` says."""
        self._engine = engine
        self._config = config
        self._python_checked: set[str] = set()

    def start(
        self,
        task: DockerTask,
        *,
        on_output: Callable[[str, str], None] | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> DockerRun:
        """Start ``task``'s container; raises ContainerError (or a subclass) if it cannot.

        A venv missing from the cache is built first, in its own container: its output
        goes to ``on_output`` as it comes (without one, the run's ``logs()`` begin with
        it); ``interrupted()`` turning true stops the build (ContainerInterrupted).
        """
        if not task.command:
            raise ContainerError("the task has no command to run in its container")
        image = self._image(task.container)
        extra = parse_docker_args(
            task.container.arguments,
            volume_roots=self._config.volume_roots,
            allow_host_ipc=self._config.allow_host_ipc,
            allow_host_network=self._config.allow_host_network or task.network_mode == "host",
        )
        network = _network_mode(task, extra.network_mode, self._config.network_mode)
        packages = check_system_packages(task.container.system_packages)
        working_dir = _working_dir(task.working_dir)
        requirements = self._requirements(task.env)
        image_id = self._engine.image_id(image, pull=self._config.pull)
        self._check_python(image, image_id)
        key = self.env_key(image_id, requirements, task.env.index_urls) if requirements else None
        control = Path(tempfile.mkdtemp(prefix="clearq-docker-"))
        prelude: list[tuple[str, str]] = []
        try:
            self._write_control(control, task, packages, requirements, key, working_dir)
            self._config.envs_dir.mkdir(parents=True, exist_ok=True)
            env = None
            if key is not None:
                say = on_output or (lambda stream, text: prelude.append((stream, text)))
                env = self._ensure_env(image, key, control, say, interrupted)
            spec = ContainerSpec(
                image=image,
                command=("python3", "-I", CONTAINER_BOOTSTRAP, f"{CONTAINER_CONTROL}/plan.json"),
                environment=self._environment(extra.environment, task.environment),
                mounts=(*self._mounts(task, control), *extra.volumes),
                working_dir=working_dir,
                network_mode=network,
                gpus=tuple(task.gpus) if task.gpus else None,
                shm_size=extra.shm_size,
                ipc_mode=extra.ipc_mode,
                mem_limit=extra.mem_limit,
                nano_cpus=extra.nano_cpus,
                labels={**self._config.owner_labels, "clearq": "task", **task.labels},
                name=task.name,
            )
            handle = self._engine.start(spec)
        except BaseException:
            shutil.rmtree(control, ignore_errors=True)
            raise
        return DockerRun(
            handle,
            control,
            image=image,
            image_id=image_id,
            env_key=key,
            grace=self._config.stop_grace_seconds,
            env_hit=None if env is None else env.hit,
            env_build_seconds=None if env is None else env.build_seconds,
            prelude=tuple(prelude),
        )

    def _ensure_env(
        self,
        image: str,
        key: str,
        control: Path,
        on_output: Callable[[str, str], None],
        interrupted: Callable[[], bool] | None,
    ) -> EnvReady:
        def build_spec(build: Path) -> ContainerSpec:
            target = f"{CONTAINER_ENVS}/{BUILDS_DIRNAME}/{build.name}"
            (control / "build.json").write_text(json.dumps({**plan, "build": target}))
            return ContainerSpec(
                image=image,
                command=("python3", "-I", CONTAINER_BOOTSTRAP, f"{CONTAINER_CONTROL}/build.json"),
                environment=self._environment(),
                mounts=(*self._shared_mounts(control), Mount(build.resolve(), target, False)),
                network_mode=self._config.network_mode,
                labels={**self._config.owner_labels, "clearq": "env-build"},
            )

        plan = json.loads((control / "plan.json").read_text())["build_plan"]
        return ensure_env(
            self._engine,
            self._config.envs_dir,
            key,
            build_spec,
            on_output=on_output,
            interrupted=interrupted or (lambda: False),
            grace=self._config.stop_grace_seconds,
        )

    def env_key(
        self, image_id: str, requirements: tuple[str, ...], index_urls: tuple[str, ...] = ()
    ) -> str:
        """The env cache key of ``requirements`` built on the image ``image_id``."""
        payload = {
            "version": _KEY_VERSION,
            "image": image_id,
            "requirements": sorted(set(requirements)),
            "index_urls": list(index_urls),
            "system_site_packages": self._config.system_site_packages,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def _check_python(self, image: str, image_id: str) -> None:
        """Once per image: the bootstrap runs with the image's python3, 3.7 or later."""
        if image_id in self._python_checked:
            return
        probe = ContainerSpec(
            image=image,
            command=("python3", "-I", "-c", _PYTHON_PROBE),
            network_mode="none",
            labels={**self._config.owner_labels, "clearq": "probe"},
        )
        handle = self._engine.start(probe)
        try:
            said = b"".join(data for _, data in handle.output()).decode(errors="replace")
            code = handle.wait(_PROBE_SECONDS)
        finally:
            handle.remove()
        if code != 0:
            raise ContainerError(
                f"image {image!r} has no usable python3: Docker mode needs python3 (3.7 or "
                f"later) on the image's PATH to prepare and run the task ({said.strip()})"
            )
        self._python_checked.add(image_id)

    def _image(self, container: Container) -> str:
        image = container.image or self._config.default_image
        if not image:
            raise ContainerError(
                "the task names no image and the agent has no default; set the task's "
                "container image or CLEARQ_DOCKER_IMAGE"
            )
        return check_image_name(image)

    def _requirements(self, env: EnvSpec) -> tuple[str, ...]:
        if env.lock_file:
            kind = env.lock_kind or f"{env.manager.value} lock file"
            raise ContainerError(
                f"Docker mode builds pip requirements; a {kind} cannot be used in a "
                "container yet: give the task its requirements instead"
            )
        if env.install_first or env.no_build_isolation:
            raise ContainerError(
                "Docker mode installs the requirements in one step; install_first and "
                "no_build_isolation are not used in a container yet: run the task on a "
                "host-mode agent, or prepare those packages in the image"
            )
        return checked_requirements((*env.requirements, *self._config.clearq_requirements))

    def _write_control(
        self,
        control: Path,
        task: DockerTask,
        packages: tuple[str, ...],
        requirements: tuple[str, ...],
        key: str | None,
        working_dir: str,
    ) -> None:
        (control / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
        setup = None
        if task.container.setup_script.strip():
            (control / "setup.sh").write_text(task.container.setup_script)
            setup = f"{CONTAINER_CONTROL}/setup.sh"
        build_plan: dict[str, object] = {
            "system_packages": list(packages),
            "key": key,
            "requirement_files": [f"{CONTAINER_CONTROL}/requirements.txt"] if requirements else [],
            "index_args": index_args(task.env.index_urls),
            "system_site_packages": self._config.system_site_packages,
        }
        plan: dict[str, object] = {
            "system_packages": list(packages),
            "setup_script": setup,
            "venv": f"{CONTAINER_ENVS}/{key}" if key else None,
            "command": list(task.command),
            "working_dir": working_dir,
            "pythonpath": _import_paths(self._config.clearq_package is not None, working_dir),
            "with_clearq": self._config.clearq_package is not None,
            "build_plan": build_plan,
        }
        (control / "plan.json").write_text(json.dumps(plan, indent=1))

    def _environment(self, *layers: Mapping[str, str]) -> dict[str, str]:
        """The agent's package index and CA settings, then ``layers``, later ones winning."""
        env = dict(self._config.carried_environment)
        if self._config.ca_bundle is not None:
            env.update(dict.fromkeys(_CA_VARIABLES, CONTAINER_CA_BUNDLE))
        env.update(_FIXED_ENVIRONMENT)
        for layer in layers:
            env.update(layer)
        for name in _DROPPED_VARIABLES:
            env.pop(name, None)
        return env

    def _mounts(self, task: DockerTask, control: Path) -> tuple[Mount, ...]:
        if not task.workspace.is_dir():
            raise ContainerError(f"the workspace {task.workspace} is not a folder")
        mounts = [
            Mount(task.workspace.resolve(), CONTAINER_WORKSPACE, read_only=False),
            *self._shared_mounts(control),
        ]
        if self._config.clearq_package is not None:
            mounts.append(Mount(self._config.clearq_package.resolve(), f"{CONTAINER_LIB}/clearq"))
        return (*mounts, *task.mounts)

    def _shared_mounts(self, control: Path) -> list[Mount]:
        """What the build's container and the task's share, all read-only."""
        mounts = [
            Mount(control, CONTAINER_CONTROL),
            Mount(Path(docker_bootstrap.__file__).resolve(), CONTAINER_BOOTSTRAP),
            Mount(self._config.envs_dir.resolve(), CONTAINER_ENVS),
        ]
        if self._config.ca_bundle is not None:
            mounts.append(Mount(self._config.ca_bundle.resolve(), CONTAINER_CA_BUNDLE))
        return mounts


_CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
_FIXED_ENVIRONMENT = {
    # Without it a Python task's prints sit in a block buffer: no live log.
    "PYTHONUNBUFFERED": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
}


def _import_paths(with_clearq: bool, working_dir: str) -> list[str]:
    """``PYTHONPATH``'s first entries in the container: clearq's folder, the repository's
    root and the working folder (as importable as in a checkout); the bootstrap puts the
    task's own ``PYTHONPATH`` after them."""
    paths = [CONTAINER_LIB] if with_clearq else []
    return list(dict.fromkeys([*paths, CONTAINER_WORKSPACE, working_dir]))


def _working_dir(relative: str) -> str:
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if relative.startswith("/") or ".." in parts or "\0" in relative:
        raise DockerArgsRefused(f"working folder {relative!r} must stay inside the workspace")
    return "/".join([CONTAINER_WORKSPACE, *parts])


def connect_engine(environment: Mapping[str, str] | None = None) -> ContainerEngine:
    """The Docker daemon ``DOCKER_HOST`` names (or the default socket), through the SDK.

    Raises EngineUnavailable when none answers. The SDK is imported only here.
    """
    from clearq.envs.docker_engine import DockerEngine

    return DockerEngine(environment)


def _network_mode(task: DockerTask, asked: str | None, default: str) -> str:
    """The network of ``task``'s container: the agent's need, the task's ask, the default."""
    if task.network_mode is None:
        return asked or default
    if asked is not None and asked != task.network_mode:
        why = f" ({task.network_reason})" if task.network_reason else ""
        raise DockerArgsRefused(
            f"docker argument --network {asked} cannot be used for this task: its container "
            f"runs in the {task.network_mode!r} network{why}; leave --network out"
        )
    return task.network_mode
