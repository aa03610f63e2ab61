"""A child that dies with its agent: Linux's parent-death signal.

The agent's task processes (their watchdog, :mod:`clearq.runtime.watchdog`), its git
commands and its installers (pip, uv) are all started with it, so none outlives an agent
that was SIGKILLed. It sits at the package's root, below ``runtime`` and ``envs``, which
both use it.

``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the child, between fork and exec, makes the kernel
kill it when its parent goes, however the parent goes (SIGKILL included). The signal
follows the *thread* that forked, not the process: the thread that starts a task
process must outlive it, as the executor's do (each waits for its process, or kills it).

The preexec function runs in the forked child while the agent's other threads are gone
from it: it calls only the prctl function resolved beforehand, ``getppid`` and ``kill``,
which take no lock. If the agent died between the fork and the prctl (the child then
already belongs to init), the child kills itself rather than run unowned.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that ties the child's life to this process; None off Linux.

    The child gets ``sig`` when its parent goes: SIGKILL, or a signal it catches to end
    its own children first (the watchdog's SIGTERM).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()
    parent = os.getpid()
    kill = int(sig)

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0)
        if os.getppid() != parent:  # the agent is already gone
            os.kill(os.getpid(), kill)

    return tie


@functools.cache
def _prctl() -> Any:
    """libc's prctl, resolved once in the agent (never in a forked child)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl
