"""A task's process: started in its own process group, its output streamed, stopped whole.

The command is an argument list, never a shell string: nothing from a task's data is
ever parsed by a shell. ``stop`` sends SIGTERM to the whole group (the task's own
children included), then SIGKILL after a grace period.

On Linux the command runs under :mod:`clearq.runtime.watchdog`, at the head of the group:
``hold`` feeds it the agent's give-up time for the attempt on every lease renewal, and
once that passes unrenewed (a frozen agent) or the agent dies however it dies (its
parent-death signal, :mod:`clearq.deathsig`), the watchdog kills the whole
group, the task's children included. Elsewhere the command is started directly.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from clearq.deathsig import die_with_parent
from clearq.errors import ClearqError
from clearq.runtime import watchdog
from clearq.runtime.graces import DEFAULT_STOP_GRACE_SECONDS as DEFAULT_STOP_GRACE_SECONDS

_READ_SIZE = 64 * 1024
_WATCHED = sys.platform.startswith("linux")

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
        if not _executable(argv[0], cwd, env):
            raise ProcessStartError(f"cannot start {argv[0]}: no such executable")
        self._lock = threading.Lock()
        self._until: float | None = None
        self._keepalive: int | None = None
        command, tie = list(argv), die_with_parent()
        passed: tuple[int, ...] = ()
        if _WATCHED:
            read, self._keepalive = os.pipe()
            os.set_blocking(self._keepalive, False)  # a frozen watchdog never blocks a beat
            command = [sys.executable, "-I", watchdog.__file__, str(read), "--", *argv]
            passed, tie = (read,), die_with_parent(signal.SIGTERM)
        try:
            self._proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, to stop it whole
                pass_fds=passed,
                user=None if user is None else user[0],
                group=None if user is None else user[1],
                extra_groups=None if user is None else [],
                # Runs after the change of user, which would clear the death signal.
                preexec_fn=tie,  # lock-free: see clearq.deathsig
            )
        except OSError as e:
            self._close_keepalive()
            raise ProcessStartError(f"cannot start {argv[0]}: {e}") from e
        finally:
            for fd in passed:
                os.close(fd)
        self.pid = self._proc.pid
        self.watched = _WATCHED
        """The process is the task's watchdog (its command is the watchdog's child)."""
        self.started = time.monotonic()
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._readers = [
            threading.Thread(target=_pump, args=(self._proc.stdout, "stdout", sink), daemon=True),
            threading.Thread(target=_pump, args=(self._proc.stderr, "stderr", sink), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def hold(self, until: float) -> None:
        """Keep the process until ``until`` (monotonic) at least; the watchdog ends it
        then, unless a later time comes first. Safe from any thread, at any time."""
        with self._lock:
            if self._until is not None and until <= self._until:
                return
            self._until = until
            if self._keepalive is None:
                return
            with contextlib.suppress(BlockingIOError, BrokenPipeError):  # it is gone or full
                os.write(self._keepalive, f"{until!r}\n".encode())

    @property
    def gave_up(self) -> bool:
        """True when the process ended killed after its hold time passed: the watchdog's
        doing (or the agent's own give-up), never the task's own end."""
        code = self._proc.returncode
        with self._lock:
            until = self._until
        return code == -signal.SIGKILL and until is not None and time.monotonic() >= until

    def poll(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end and for its output to be read; the exit code."""
        code = self._proc.wait(timeout)
        self._close_keepalive()
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

    def _close_keepalive(self) -> None:
        with self._lock:
            if self._keepalive is not None:
                os.close(self._keepalive)
                self._keepalive = None

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing to stop
            os.killpg(self.pid, sig)


def _executable(program: str, cwd: Path, env: Mapping[str, str]) -> bool:
    # Checked here: under the watchdog, a command that cannot start is its exit 127.
    if os.sep in program:
        path = cwd / program  # an absolute program stays itself
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.defpath)) is not None


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
