"""A task's running container, as Docker mode hands it to the agent.

``DockerRun.logs()`` yields ``(stream, text)`` line by line as the task writes (decoded
as UTF-8, a broken byte replaced, a line past 64 KiB without a newline cut), ``wait()``
gives the exit code, ``stop()`` sends SIGTERM and then SIGKILL after the grace period,
and ``close()`` removes the container and the run's control files.
"""

from __future__ import annotations

import codecs
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from clearq.envs.docker_spec import ContainerHandle, Stream

__all__ = ["DockerRun", "decode_lines"]

_LONGEST_LINE = 64 * 1024


class DockerRun:
    """A task's running container: follow its output, wait, stop, remove."""

    def __init__(
        self,
        handle: ContainerHandle,
        control: Path,
        *,
        image: str,
        image_id: str,
        env_key: str | None,
        grace: float,
        env_hit: bool | None = None,
        env_build_seconds: float | None = None,
        prelude: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.handle = handle
        self.image = image
        self.image_id = image_id
        self.env_key = env_key
        """The env cache key of this run's venv (``ENVS/<env_key>`` on the host); None
        when there was nothing to install and the image's own Python runs the task."""
        self.env_hit = env_hit
        """True: the venv came from the cache; False: built for this run; None: no venv."""
        self.env_build_seconds = env_build_seconds
        self._prelude = prelude
        self._control = control
        self._grace = grace

    @property
    def container_id(self) -> str:
        """The engine's id of the container."""
        return self.handle.id

    def logs(self) -> Iterator[tuple[str, str]]:
        """``(stream, text)`` pieces as written, line by line, until the container ends.

        Each call follows the output from the container's start again, after what the
        environment's build said when nobody was given it live (``prelude``).
        """
        yield from self._prelude
        yield from decode_lines(self.handle.output())

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the container ends; None if ``timeout`` seconds pass first."""
        return self.handle.wait(timeout)

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM the task, SIGKILL it after ``grace`` seconds (default: the config's)."""
        self.handle.stop(self._grace if grace is None else grace)

    def close(self) -> None:
        """Remove the container (killing it if it still runs) and this run's files."""
        try:
            self.handle.remove()
        finally:
            shutil.rmtree(self._control, ignore_errors=True)

    def follow(self, on_output: Callable[[str, str], None]) -> int:
        """Hand every piece of output to ``on_output`` until the end; return the exit code."""
        for stream, text in self.logs():
            on_output(stream, text)
        code = self.wait()
        assert code is not None
        return code

    def __enter__(self) -> DockerRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_STREAMS = ("stdout", "stderr")


def decode_lines(chunks: Iterable[tuple[Stream, bytes]]) -> Iterator[tuple[str, str]]:
    """A container's output chunks as ``(stream, text)`` lines, decoded as UTF-8."""
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in _STREAMS}
    pending = dict.fromkeys(_STREAMS, "")
    for stream, data in chunks:
        text = pending[stream] + decoders[stream].decode(data)
        *lines, rest = text.split("\n")
        for line in lines:
            yield stream, line + "\n"
        if len(rest) > _LONGEST_LINE:
            yield stream, rest
            rest = ""
        pending[stream] = rest
    for stream in _STREAMS:
        tail = pending[stream] + decoders[stream].decode(b"", final=True)
        if tail:
            yield stream, tail
