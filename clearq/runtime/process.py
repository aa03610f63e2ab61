"""A task's process: started in its own process group, its output streamed, stopped whole.

The command is an argument list, never a shell string: nothing from a task's data is
ever parsed by a shell. ``stop`` sends SIGTERM to the whole group (the task's own
children included), then SIGKILL after a grace period. On Linux the process dies with
the agent that started it, however the agent ends (see :mod:`clearq.runtime.deathsig`).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from clearq.errors import ClearqError
from clearq.runtime.deathsig import die_with_parent

DEFAULT_STOP_GRACE_SECONDS = 10.0
_READ_SIZE = 64 * 1024

OutputSink = Callable[[str, str], None]
"""Receives (stream, text) as the process writes it; stream is stdout or stderr."""


class ProcessStartError(ClearqError):
    """The task's command could not be started (missing interpreter, no permission)."""


class TaskProcess:
    """One running task command.

    The thread that starts it must outlive it (wait for it, stop or kill it): on Linux
    the process is killed when that thread ends.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        sink: OutputSink,
        user: tuple[int, int] | None = None,
    ) -> None:
        """Start ``argv``; ``user`` (uid, gid): as that user, with no other groups."""
        try:
            self._proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, to stop it whole
                user=None if user is None else user[0],
                group=None if user is None else user[1],
                extra_groups=None if user is None else [],
                # Runs after the change of user, which would clear the death signal.
                preexec_fn=die_with_parent(),  # lock-free: see clearq.runtime.deathsig
            )
        except OSError as e:
            raise ProcessStartError(f"cannot start {argv[0]}: {e}") from e
        self.pid = self._proc.pid
        self.started = time.monotonic()
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._readers = [
            threading.Thread(target=_pump, args=(self._proc.stdout, "stdout", sink), daemon=True),
            threading.Thread(target=_pump, args=(self._proc.stderr, "stderr", sink), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def poll(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end and for its output to be read; the exit code."""
        code = self._proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self, grace: float = DEFAULT_STOP_GRACE_SECONDS) -> int:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; the exit code."""
        self._signal(signal.SIGTERM)
        try:
            return self.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.wait()

    def kill(self) -> int:
        """SIGKILL to the process group now (the attempt is no longer ours)."""
        self._signal(signal.SIGKILL)
        return self.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing to stop
            os.killpg(self.pid, sig)


def _pump(pipe: IO[bytes], stream: str, sink: OutputSink) -> None:
    # read1 returns what is there now: output reaches the log as it is written. The
    # incremental decoder keeps a character split across two reads whole.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with pipe:
        while chunk := pipe.read1(_READ_SIZE):  # type: ignore[attr-defined]
            if text := decoder.decode(chunk):
                sink(stream, text)
        if rest := decoder.decode(b"", final=True):
            sink(stream, rest)


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
