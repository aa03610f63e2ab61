"""The watchdog between an agent and a task's process: it ends the task when its agent can't.

An agent that is frozen (SIGSTOP, a VM paused, swapped out) cannot stop its task when
the attempt's lease runs out, and a retry elsewhere would run beside it, holding the
same GPU. So every task command is started as::

    python -I watchdog.py FD -- COMMAND...

This process starts ``COMMAND`` as its child, in its own process group (the agent put
the watchdog at the head of a new session), and reads *keep-alive* lines on file
descriptor ``FD``: each is the agent's give-up time for the attempt on the machine's
monotonic clock (``CLOCK_MONOTONIC`` is one clock for every process), written on every
lease renewal. When that time passes with no later one sent, or the agent is gone
(the keep-alive pipe closes, or the parent-death signal arrives while it is no longer
the parent), the watchdog sends SIGKILL to the whole process group, the task's
children and itself included. Until the agent sends a first time it has no give-up
time, and only the agent's death ends the task early.

It is otherwise transparent: the command's output goes straight to the agent's pipes;
every signal the agent sends the group (SIGTERM to stop, SIGKILL after the grace)
reaches the task itself, and the watchdog, which catches the catchable ones, outlives
SIGTERM to report the task's end: it exits with the task's status, or dies of the signal
that killed the task (without a core dump of its own). A command that cannot be started
exits 127 with the reason on stderr, as a shell says it.

It runs with ``-I`` (no environment, no site, not its folder on ``sys.path``): the
standard library only, nothing a task's environment can replace. It starts no thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

CANNOT_START = 127
_PR_SET_PDEATHSIG = 1
_READ_SIZE = 4096
_CAUGHT = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)
"""Signals a task may send its own group: the watchdog must not die of them (they would
end the task). SIGTERM is also its parent-death signal: which it is, getppid says."""


class Hold:
    """The give-up time the keep-alive lines say: the latest one, once one came."""

    def __init__(self) -> None:
        self.until: float | None = None
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """Take the complete lines in ``data`` (a line may arrive in two reads)."""
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                until = float(line)
            except ValueError:
                continue  # not the agent's: the pipe is its alone, so never seen
            if self.until is None or until > self.until:
                self.until = until

    def timeout(self, now: float) -> float | None:
        """Seconds to wait for the next line; None: for ever (no give-up time yet)."""
        return None if self.until is None else max(0.0, self.until - now)

    def expired(self, now: float) -> bool:
        """True once the give-up time has passed."""
        return self.until is not None and now >= self.until


def watch(
    keepalive: int,
    child: int,
    *,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[Sequence[int], float | None], list[int]] | None = None,
    read: Callable[[int, int], bytes] = os.read,
) -> str | None:
    """Wait for the child's end (None) or a reason to end its group (the reason).

    ``child`` is a file descriptor readable once the child has ended (a pidfd).
    """
    wait = wait or _select
    hold = Hold()
    while True:
        ready = wait((keepalive, child), hold.timeout(clock()))
        if child in ready:
            return None
        if keepalive in ready:
            data = read(keepalive, _READ_SIZE)
            if not data:
                return "the agent is gone"
            hold.feed(data)
        if hold.expired(clock()):
            return "the agent stopped renewing the task's lease (frozen or cut off)"


def _select(fds: Sequence[int], timeout: float | None) -> list[int]:
    return select.select(list(fds), [], [], timeout)[0]


def end_group(reason: str) -> NoReturn:
    """SIGKILL to the whole process group: the task, its children, this watchdog."""
    with contextlib.suppress(OSError):  # a dead agent's pipe: no one left to tell
        os.write(2, f"clearq watchdog: {reason}: killing the task's processes\n".encode())
    os.killpg(0, signal.SIGKILL)
    os._exit(128 + signal.SIGKILL)  # never reached: the group's kill includes this process


def exit_as(code: int) -> NoReturn:
    """Exit as the child did: with its status, or killed by its signal."""
    if code >= 0:
        os._exit(code)
    sig = -code
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the task's crash, not ours to dump
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)  # a signal whose default is not to end the process


def _on_signal(parent: int) -> Callable[[int, FrameType | None], None]:
    def caught(signum: int, frame: FrameType | None) -> None:
        if os.getppid() != parent:  # the parent-death signal: the agent has died
            end_group("the agent is gone")

    return caught


def _tie_to_me() -> Callable[[], None]:
    """The child's ``preexec_fn``: SIGKILL when this watchdog dies (this process has no
    other thread, so the preexec function is safe here)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    me = os.getpid()

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0)
        if os.getppid() != me:
            os.kill(os.getpid(), signal.SIGKILL)

    return tie


def main(argv: Sequence[str]) -> NoReturn:
    """``FD -- COMMAND...``: run COMMAND under the keep-alive read from FD."""
    if len(argv) < 3 or argv[1] != "--":
        os.write(2, b"usage: watchdog.py FD -- COMMAND...\n")
        os._exit(2)
    keepalive, command = int(argv[0]), list(argv[2:])
    os.set_inheritable(keepalive, False)
    caught = _on_signal(os.getppid())
    for sig in _CAUGHT:
        signal.signal(sig, caught)
    try:
        child = subprocess.Popen(command, preexec_fn=_tie_to_me())
    except OSError as e:
        with contextlib.suppress(OSError):
            os.write(2, f"clearq: cannot start {command[0]}: {e}\n".encode())
        os._exit(CANNOT_START)
    reason = watch(keepalive, os.pidfd_open(child.pid))
    if reason is not None:
        end_group(reason)
    exit_as(child.wait())


if __name__ == "__main__":
    main(sys.argv[1:])
