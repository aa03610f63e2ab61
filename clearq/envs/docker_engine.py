"""The real container engine: a Docker daemon reached through the ``docker`` SDK.

This is the only module that imports the SDK; its errors are translated here into
ContainerError and its subclasses. ``run_kwargs`` (pure) turns a ContainerSpec into the
SDK's keyword arguments, so what reaches the daemon is checked without one.

Output is read from the daemon's ``logs?follow=1`` stream (everything from the start,
both streams kept apart by its frame headers) on a client without a read timeout: a task
may print nothing for hours. The SDK's own attach stream would give up after its default
60 s and cannot be closed, so the frames are read here and the response closed after.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker
import docker.errors
import docker.types

from clearq.envs.docker_spec import ContainerSpec, Stream
from clearq.errors import ContainerError, EngineUnavailable, ImageNotFound

__all__ = ["DockerEngine", "run_kwargs"]

_POLL_SECONDS = 0.2
_DEFAULT_HOST = "unix:///var/run/docker.sock"
_UNIX = "unix://"
_PROBE_SECONDS = 5.0
_HEADER_SIZE = 8
_STDERR = 2
_GONE = 404
_FIRST_ERROR = 400
_NOT_PULLABLE = (docker.errors.ImageNotFound, docker.errors.NotFound, docker.errors.APIError)


def run_kwargs(spec: ContainerSpec) -> dict[str, Any]:
    """The ``containers.create`` keyword arguments that start ``spec``."""
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "environment": dict(spec.environment),
        "mounts": [
            docker.types.Mount(
                target=m.target, source=str(m.source), type="bind", read_only=m.read_only
            )
            for m in spec.mounts
        ],
        "network_mode": spec.network_mode,
        "labels": dict(spec.labels),
        # docker-init reaps orphans and passes SIGTERM on to the bootstrap.
        "init": True,
        "detach": True,
        "tty": False,
        "stdin_open": False,
    }
    if spec.gpus:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(device_ids=list(spec.gpus), capabilities=[["gpu"]])
        ]
    optional = {
        "working_dir": spec.working_dir,
        "shm_size": spec.shm_size,
        "ipc_mode": spec.ipc_mode,
        "mem_limit": spec.mem_limit,
        "nano_cpus": spec.nano_cpus,
        "name": spec.name,
    }
    kwargs.update({key: value for key, value in optional.items() if value is not None})
    return kwargs


class DockerEngine:
    """Containers on the Docker daemon that ``DOCKER_HOST`` (or the default socket) names."""

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        """Connect to the daemon; raises EngineUnavailable when none answers."""
        self._environment = environment
        try:
            _probe_socket(environment)
            self._client = docker.from_env(environment=environment, version="auto")
        except (docker.errors.DockerException, OSError) as e:
            # requests' connection errors are OSErrors.
            raise EngineUnavailable(
                f"no Docker engine answers ({e}); start dockerd or set DOCKER_HOST"
            ) from e

    def close(self) -> None:
        """Close the connections to the daemon."""
        self._client.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stream_client(self) -> Any:
        """A client of its own with no read timeout, for one long read; close it after."""
        return docker.from_env(
            environment=self._environment, version=self._client.api.api_version, timeout=None
        )

    def image_id(self, image: str, *, pull: bool) -> str:
        """The id of ``image`` here, pulled first when missing and ``pull``."""
        try:
            return str(self._client.images.get(image).id)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as e:
            raise ContainerError(f"cannot inspect image {image!r}: {e.explanation}") from e
        if not pull:
            raise ImageNotFound(
                f"image {image!r} is not on this machine (and pulling is off); "
                f"`docker pull {image}` or build it, or name another image"
            )
        try:
            return str(self._client.images.pull(image).id)
        except _NOT_PULLABLE as e:
            raise ImageNotFound(
                f"image {image!r} is not on this machine and could not be pulled "
                f"({_explain(e)}); check its name, or pull or build it on this machine"
            ) from e

    def start(self, spec: ContainerSpec) -> DockerContainer:
        """Create and start a container for ``spec``."""
        try:
            container = self._client.containers.create(**run_kwargs(spec))
        except docker.errors.ImageNotFound as e:
            raise ImageNotFound(f"image {spec.image!r} is not on this machine") from e
        except docker.errors.APIError as e:
            raise ContainerError(f"cannot create a container: {_explain(e)}") from e
        handle = DockerContainer(container.id, self._client, self._stream_client)
        try:
            container.start()
        except docker.errors.APIError as e:
            handle.remove()
            raise ContainerError(f"cannot start the container: {_explain(e)}") from e
        return handle

    def labelled(self, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every container, running or not, that carries ``labels``."""
        wanted = [f"{key}={value}" for key, value in labels.items()]
        try:
            found = self._client.api.containers(all=True, filters={"label": wanted})
        except docker.errors.APIError as e:
            raise ContainerError(f"cannot list containers: {_explain(e)}") from e
        return [(str(c["Id"]), dict(c.get("Labels") or {})) for c in found]

    def remove_container(self, container_id: str) -> None:
        """Remove a container by id, killing it first if it still runs."""
        DockerContainer(container_id, self._client, self._stream_client).remove()


class DockerContainer:
    """A container started by DockerEngine."""

    def __init__(self, container_id: str, client: Any, stream_client: Callable[[], Any]) -> None:
        self._id = container_id
        self._client = client
        self._stream_client = stream_client

    @property
    def id(self) -> str:
        """The daemon's id of the container."""
        return self._id

    def output(self) -> Iterator[tuple[Stream, bytes]]:
        """Both streams from the start, as written, until the container ends."""
        client = self._stream_client()
        api = client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{self._id}/logs"
        params = {"follow": 1, "stdout": 1, "stderr": 1}
        try:
            response = api.get(url, params=params, stream=True)
            if response.status_code == _GONE:
                return
            if response.status_code >= _FIRST_ERROR:
                raise ContainerError(f"cannot read the container's output: {response.text}")
            try:
                yield from _frames(response.raw)
            finally:
                response.close()
        finally:
            client.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the container ends; None if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self._state()
            if state.get("Status") in ("exited", "dead"):
                return int(state.get("ExitCode", -1))
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if deadline is None:
                return self._wait_unbounded()
            time.sleep(_POLL_SECONDS)

    def _wait_unbounded(self) -> int:
        client = self._stream_client()
        try:
            return int(client.api.wait(self._id).get("StatusCode", -1))
        except docker.errors.NotFound as e:
            raise ContainerError(f"container {self._id[:12]} is gone") from e
        finally:
            client.close()

    def _state(self) -> dict[str, Any]:
        try:
            return dict(self._client.api.inspect_container(self._id)["State"])
        except docker.errors.NotFound as e:
            raise ContainerError(f"container {self._id[:12]} is gone") from e

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        try:
            self._client.api.stop(self._id, timeout=max(0, round(grace)))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            raise ContainerError(f"cannot stop container {self._id[:12]}: {_explain(e)}") from e

    def remove(self) -> None:
        """Remove the container, killing it first if it still runs."""
        try:
            self._client.api.remove_container(self._id, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if "already in progress" in str(e):
                return
            raise ContainerError(f"cannot remove container {self._id[:12]}: {_explain(e)}") from e


def _probe_socket(environment: Mapping[str, str] | None) -> None:
    """Connect to a local daemon's socket once, so that a missing daemon is an OSError.

    The SDK, asked to connect to a socket nobody listens on, leaves its socket unclosed.
    """
    host = (os.environ if environment is None else environment).get("DOCKER_HOST") or ""
    host = host or _DEFAULT_HOST
    if host.startswith(_UNIX):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(_PROBE_SECONDS)
            probe.connect(host.removeprefix(_UNIX))


def _frames(raw: Any) -> Iterator[tuple[Stream, bytes]]:
    """Docker's multiplexed stream: an 8-byte header (stream, size), then the bytes."""
    while True:
        header = _read_exactly(raw, _HEADER_SIZE)
        if len(header) < _HEADER_SIZE:
            return
        kind, size = struct.unpack(">BxxxL", header)
        data = _read_exactly(raw, size)
        if data:
            yield ("stderr" if kind == _STDERR else "stdout"), data


def _read_exactly(raw: Any, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = raw.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _explain(error: Exception) -> str:
    return str(getattr(error, "explanation", None) or error)
