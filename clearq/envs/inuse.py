"""Who is using an environment: shared ``flock`` locks on its use file.

Every user of a cache entry holds a shared lock on ``<key>.use`` for as long as it runs
(the kernel drops it when the process dies, however it dies). Eviction takes the same
lock exclusively without waiting: if it cannot, someone is using the entry and it stays.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["UseLock"]


class UseLock:
    """A held lock on a use file, shared (a user) or exclusive (an evicter)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, path: Path, *, exclusive: bool) -> UseLock | None:
        """The lock on ``path`` if it can be had now, else None."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not exclusive:
            os.utime(fd)
        return cls(fd)

    @property
    def held(self) -> bool:
        """True until released."""
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lock (a second call does nothing)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
