"""Docker mode's env cache: each venv built in a container of its own, then read-only.

A task's container sees the env cache read-only, so no task can change a venv that
later containers reuse. A venv missing from the cache is built first, in a separate
container that sees the cache read-only too and only its own, fresh build folder
writable (``ENVS/.builds/<key>-<random>``, bound at the same path: venvs do not survive
a move). That container runs the bootstrap's build step alone (system packages, then
``python3 -m venv`` and pip): never the task's setup script or code, whose output the
env key does not name. The agent, on the host, holds an exclusive ``flock`` on
``ENVS/.locks/<key>.lock`` across the build (concurrent agents and runs on the machine
build a key once), checks the build's ready marker, and publishes it by atomically
renaming a relative symlink to ``ENVS/<key>``. A failed or interrupted build is never
published, and is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clearq.envs.docker_bootstrap import EXIT_ENVIRONMENT, READY_MARKER
from clearq.envs.docker_run import decode_lines
from clearq.envs.docker_spec import ContainerEngine, ContainerHandle, ContainerSpec
from clearq.errors import ContainerInterrupted, ContainerStepFailed

__all__ = ["BUILDS_DIRNAME", "EnvReady", "ensure_env"]

BUILDS_DIRNAME = ".builds"
_LOCKS_DIRNAME = ".locks"
_POLL_SECONDS = 0.2
_END_SECONDS = 30.0

OnOutput = Callable[[str, str], None]
Interrupted = Callable[[], bool]
MakeSpec = Callable[[Path], ContainerSpec]
"""The build container's spec, given the host folder it is to build the venv in."""


@dataclass(frozen=True)
class EnvReady:
    """A venv in the cache: reused (``hit``) or built now in ``build_seconds``."""

    key: str
    hit: bool
    build_seconds: float | None


def ensure_env(
    engine: ContainerEngine,
    envs: Path,
    key: str,
    make_spec: MakeSpec,
    *,
    on_output: OnOutput,
    interrupted: Interrupted,
    grace: float,
) -> EnvReady:
    """The venv ``key`` in ``envs``, built in a container from ``make_spec`` if missing.

    Raises ContainerStepFailed when the build fails (its bootstrap exit code), and
    ContainerInterrupted when ``interrupted()`` turns true before it is done.
    """
    published = envs / key
    if _is_ready(published):
        _touch(published)
        on_output("stderr", f"clearq-docker: environment {key} reused\n")
        return EnvReady(key, True, None)
    for folder in (envs / _LOCKS_DIRNAME, envs / BUILDS_DIRNAME):
        folder.mkdir(parents=True, exist_ok=True)
    with _locked(envs / _LOCKS_DIRNAME / f"{key}.lock", interrupted):
        if _is_ready(published):
            on_output("stderr", f"clearq-docker: environment {key} reused (built meanwhile)\n")
            return EnvReady(key, True, None)
        for stale in (envs / BUILDS_DIRNAME).glob(f"{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build = envs / BUILDS_DIRNAME / f"{key}-{uuid.uuid4().hex[:8]}"
        build.mkdir()
        started = time.monotonic()
        try:
            _build(engine, make_spec(build), on_output, interrupted, grace)
            if not (build / READY_MARKER).is_file():
                raise ContainerStepFailed(
                    EXIT_ENVIRONMENT, "the environment's build ended without finishing the venv"
                )
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _publish(envs, build, published)
    seconds = time.monotonic() - started
    on_output("stderr", f"clearq-docker: environment {key} built in {seconds:.1f} s\n")
    return EnvReady(key, False, seconds)


def _build(
    engine: ContainerEngine,
    spec: ContainerSpec,
    on_output: OnOutput,
    interrupted: Interrupted,
    grace: float,
) -> None:
    handle = engine.start(spec)
    pump = threading.Thread(target=_pump, args=(handle, on_output), daemon=True)
    pump.start()
    try:
        while (code := handle.wait(_POLL_SECONDS)) is None:
            if interrupted():
                handle.stop(grace)
                raise ContainerInterrupted("stopped while the environment was being built")
        pump.join(_END_SECONDS)
    finally:
        handle.remove()
    if code != 0:
        raise ContainerStepFailed(code, _last_words(code))


def _pump(handle: ContainerHandle, on_output: OnOutput) -> None:
    with contextlib.suppress(OSError):  # the engine went away: the exit code says enough
        for stream, text in decode_lines(handle.output()):
            on_output(stream, text)


def _last_words(code: int) -> str:
    from clearq.envs.docker import describe_exit

    return f"{describe_exit(code) or 'the environment build failed'} (see the task's log)"


def _publish(envs: Path, build: Path, published: Path) -> None:
    link = envs / f".link-{published.name}-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(build, envs), link)
    os.replace(link, published)


def _is_ready(published: Path) -> bool:
    return (published / READY_MARKER).is_file()


def _touch(published: Path) -> None:
    """Mark the env as just used (its link's mtime), for whoever evicts old ones."""
    with contextlib.suppress(OSError):
        os.utime(published, follow_symlinks=False)


@contextlib.contextmanager
def _locked(path: Path, interrupted: Interrupted) -> Iterator[None]:
    """Hold an exclusive flock on ``path``, giving up when ``interrupted()`` turns true."""
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if interrupted():
                    raise ContainerInterrupted(
                        "stopped while waiting for another run's environment build"
                    ) from None
                time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
