"""Containers left running by agents that died, found by their labels and removed.

A host process dies with its agent (:mod:`clearq.deathsig`); a container does
not: the Docker daemon owns it. So every container an agent starts carries the agent's
labels (its worker id, host, pid and the pid's start time), and an agent starting in
Docker mode removes the containers of this host's agents that are gone. A pid is taken
for its agent only while a process with that pid and that start time lives, so a pid
reused by another process does not keep a dead agent's container.

Only this host's containers are looked at (the host label is the agent's hostname): an
agent on another machine that shares the engine is never judged by this machine's pids.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import psutil

AGENT_LABEL = "clearq.agent"
HOST_LABEL = "clearq.host"
PID_LABEL = "clearq.agent-pid"
STARTED_LABEL = "clearq.agent-started"
_SAME_START_SECONDS = 1.0
"""How far two readings of one process's start time may differ (clock ticks, rounding)."""


@runtime_checkable
class LabelledContainers(Protocol):
    """An engine that lists containers by label and removes them."""

    def labelled(self, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every container that carries ``labels``."""
        ...

    def remove_container(self, container_id: str) -> None:
        """Remove the container, killing it first if it runs."""
        ...


def owner_labels(worker: str) -> dict[str, str]:
    """The labels that say this agent process started a container."""
    me = psutil.Process(os.getpid())
    return {
        AGENT_LABEL: worker,
        HOST_LABEL: socket.gethostname(),
        PID_LABEL: str(me.pid),
        STARTED_LABEL: f"{me.create_time():.3f}",
    }


def remove_dead_agents_containers(engine: LabelledContainers) -> list[tuple[str, str]]:
    """Remove this host's containers whose agent is gone; (container id, agent) of each."""
    removed = []
    for container_id, labels in engine.labelled({HOST_LABEL: socket.gethostname()}):
        if agent_alive(labels):
            continue
        engine.remove_container(container_id)
        removed.append((container_id, labels.get(AGENT_LABEL, "?")))
    return removed


def agent_alive(labels: Mapping[str, str]) -> bool:
    """True while the agent these labels name may still live (unreadable labels: yes)."""
    try:
        pid = int(labels[PID_LABEL])
        started = float(labels[STARTED_LABEL])
    except (KeyError, ValueError):
        return True  # not labelled by an agent: not ours to remove
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started) < _SAME_START_SECONDS
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
