"""``clearq agent --detached`` and ``clearq agent --stop [NAME]``: agents in the background.

``--detached`` starts the same ``clearq agent`` command again as a process of its own
session (it outlives the terminal), its output appended to ``$CLEARQ_HOME/agents/NAME.log``,
and returns once that agent is serving (its worker row is registered) or has failed
(the end of its log is shown). The background agent keeps ``agents/NAME.pid`` while it
runs and removes it when it exits. ``--stop`` sends SIGTERM to the pid in such a file (the
agent stops claiming, lets its running tasks end within its ``--grace``, requeues the
rest) and waits for the process to exit. A pid file whose process is gone, or is not a
clearq agent any more, is stale: it is removed and said so. For agents on other machines
use ``clearq workers drain NAME``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clearq.errors import ClearqError, InvalidInput, NotFound

if TYPE_CHECKING:
    import psutil

AGENTS_DIRNAME = "agents"
DETACH_WAIT_SECONDS = 120.0
"""How long ``--detached`` waits for the new agent to register before it says so."""
STOP_WAIT_SECONDS = 120.0
"""How long ``--stop`` waits for the agent to exit after SIGTERM."""
_POLL_SECONDS = 0.2
_LOG_TAIL_LINES = 20
CHILD_FLAG = "--detached-child"
"""Hidden: this agent was started by ``--detached`` and keeps its pid file."""


def agents_dir(home: Path) -> Path:
    """Where detached agents keep their pid files and logs."""
    return home / AGENTS_DIRNAME


def pid_path(home: Path, name: str) -> Path:
    """The pid file of the detached agent called ``name``."""
    return agents_dir(home) / f"{name}.pid"


@contextlib.contextmanager
def pid_file(path: Path) -> Iterator[None]:
    """Write this process's pid to ``path`` while the block runs; remove it after if ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = str(os.getpid())
    path.write_text(mine + "\n")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() == mine:
                path.unlink()


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of the background agent: this one, without ``--detached``."""
    return [
        sys.executable,
        "-m",
        "clearq.cli",
        *(a for a in argv if a != "--detached"),
        CHILD_FLAG,
    ]


def detach(
    argv: Sequence[str],
    *,
    home: Path,
    name: str | None,
    serving: Callable[[str], bool],
) -> tuple[str, int, Path]:
    """Start the agent in the background; (worker id, pid, log path) once it serves.

    ``serving(worker_id)`` says whether that worker has registered. ClearqError with
    the end of its log when it exits first.
    """
    folder = agents_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if name is not None and _alive(pid_path(home, name)) is not None:
        raise ClearqError(
            f"a detached agent named {name!r} is running already: "
            f"`clearq agent --stop {name}` first, or give another --name"
        )
    log = folder / (f"{name}.log" if name else f".starting-{secrets.token_hex(4)}.log")
    # Owner-only: an agent's log names tasks, hosts and paths.
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        proc = subprocess.Popen(
            child_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if name is None:
        name = f"agent-{proc.pid}"  # what the agent calls itself (worker_id)
        log = log.rename(folder / f"{name}.log")
    worker = f"{socket.gethostname()}:{name}"
    _wait_until_serving(proc, worker, log, serving)
    return worker, proc.pid, log


def _wait_until_serving(
    proc: subprocess.Popen[bytes], worker: str, log: Path, serving: Callable[[str], bool]
) -> None:
    deadline = time.monotonic() + DETACH_WAIT_SECONDS
    while not serving(worker):
        code = proc.poll()
        if code is not None:
            raise ClearqError(
                f"the detached agent exited with status {code} before serving; "
                f"the end of {log}:\n{_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ClearqError(
                f"the detached agent (pid {proc.pid}) is not serving after "
                f"{DETACH_WAIT_SECONDS:g} s; it is left running: see {log}"
            )
        time.sleep(_POLL_SECONDS)


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty)"


def stop_detached(home: Path, name: str | None, *, say: Callable[[str], None]) -> None:
    """SIGTERM the detached agent ``name`` (or the only one) and wait for it to exit."""
    name, pid = _pick(home, name, say)
    log = agents_dir(home) / f"{name}.log"
    import psutil

    say(f"stopping {name} (pid {pid}): running tasks get its --grace, then are requeued")
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        process = None  # it exited on its own meanwhile
    if process is not None and not _exits(process, STOP_WAIT_SECONDS):
        raise ClearqError(
            f"{name} (pid {pid}) is still stopping after {STOP_WAIT_SECONDS:g} s: "
            f"run `clearq agent --stop {name}` again to stop its tasks now; see {log}"
        ) from None
    with contextlib.suppress(FileNotFoundError):
        pid_path(home, name).unlink()  # gone already unless it was killed
    say(f"stopped {name}")


def _exits(process: psutil.Process, timeout: float) -> bool:
    # Polled, not process.wait(): it is not our child, and where nothing reaps orphans
    # (a container's init) an exited agent stays a zombie, which is gone all the same.
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(_POLL_SECONDS)
    return False


def _pick(home: Path, name: str | None, say: Callable[[str], None]) -> tuple[str, int]:
    folder = agents_dir(home)
    if name is not None:
        name = _local_name(name)
        pid = _alive(pid_path(home, name), say=say)
        if pid is None:
            raise NotFound(f"no detached agent named {name!r} is running on this machine")
        return name, pid
    running = {}
    for path in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        pid = _alive(path, say=say)
        if pid is not None:
            running[path.stem] = pid
    if not running:
        raise NotFound(
            f"no detached agent is running on this machine (none in {folder}): "
            "start one with `clearq agent --detached -q QUEUE`"
        )
    if len(running) > 1:
        names = ", ".join(running)
        raise InvalidInput(f"several detached agents run here ({names}): give one NAME")
    [(found, pid)] = running.items()
    return found, pid


def _local_name(name: str) -> str:
    host, sep, rest = name.partition(":")
    if not sep:
        return name
    if host != socket.gethostname():
        raise InvalidInput(
            f"{name} runs on another machine: --stop stops this machine's agents; "
            f"use `clearq workers drain {name}`"
        )
    return rest


def _alive(path: Path, *, say: Callable[[str], None] | None = None) -> int | None:
    """The pid in ``path`` if it is a running clearq agent; a stale file is removed."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    pid = int(text) if text.isdigit() else None
    if pid is not None and _is_agent(pid):
        return pid
    if say is not None:
        say(f"removed the stale pid file {path} (no agent runs as pid {text or '?'})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return None


def _is_agent(pid: int) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return CHILD_FLAG in cmdline
