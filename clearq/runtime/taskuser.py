"""Host-mode tasks run as another OS user (``clearq agent --task-user NAME``).

Without it a host-mode task runs as the agent's own user, who can read the agent's
environment (``/proc/PID/environ``), its files and its SQLite database: such a task is as
trusted as its agent. An agent running as root with ``--task-user NAME`` starts every
task's setup script and process as NAME (its uid, its primary group, no other groups,
``HOME``/``USER``/``LOGNAME`` its own), and shares with it only:

- the attempt's run folder (the rebuilt code; handed to NAME before the task starts),
- the task's own artifacts folder (``CLEARQ_HOME/artifacts/<task id>``),
- the environment cache and the agent's clearq link, read-only,

and, once the agent's channel lands, that attempt's channel. ``CLEARQ_HOME`` itself
becomes traversable but not listable (0711); the database file (0600), the git mirrors
(0700) and every other run folder stay the agent's.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clearq.errors import ConfigError

__all__ = ["TaskUser"]

_PASSABLE = 0o711
_PRIVATE = 0o700
_READABLE = 0o755
_SHARED_READ_ONLY = ("envs", "agent-lib")
_PRIVATE_FOLDERS = ("git-mirrors", "docker-envs", "staging", "cache")


@dataclass(frozen=True)
class TaskUser:
    """The OS user host-mode tasks run as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str, *, euid: Callable[[], int] = os.geteuid) -> TaskUser:
        """The user ``name``; raises ConfigError unless the agent is root and it is not."""
        if euid() != 0:
            raise ConfigError(
                f"--task-user {name} needs an agent running as root (it starts each task as "
                "that user); run the agent as root, or leave --task-user out"
            )
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(
                f"--task-user {name}: no such user on this machine; create it first "
                f"(useradd --system {name})"
            ) from None
        if entry.pw_uid == 0:
            raise ConfigError(f"--task-user {name} is root: give an unprivileged user")
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)

    def environment(self) -> dict[str, str]:
        """The variables that say who the task is."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def prepare_home(self, home: Path) -> None:
        """Make ``home`` passable to the task user, its private folders the agent's."""
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(_PASSABLE)
        for name in ("runs", "artifacts"):
            (home / name).mkdir(exist_ok=True)
            (home / name).chmod(_PASSABLE)
        for name in _SHARED_READ_ONLY:
            (home / name).mkdir(exist_ok=True)
            (home / name).chmod(_READABLE)
        for name in _PRIVATE_FOLDERS:
            (home / name).mkdir(exist_ok=True)
            (home / name).chmod(_PRIVATE)

    def hand_over(self, folder: Path) -> None:
        """Give ``folder`` and everything in it to the task user (links not followed)."""
        folder.mkdir(parents=True, exist_ok=True)
        for path in _walk(folder):
            os.lchown(path, self.uid, self.gid)
        folder.chmod(_PRIVATE)


def _walk(folder: Path) -> Iterator[Path]:
    yield folder
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            yield Path(root) / name
