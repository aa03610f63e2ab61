"""Dead agents' containers: which labels say an agent is gone, and what is removed."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from clearq.runtime.orphans import (
    AGENT_LABEL,
    HOST_LABEL,
    PID_LABEL,
    STARTED_LABEL,
    agent_alive,
    owner_labels,
    remove_dead_agents_containers,
)


class FakeContainers:
    def __init__(self, containers: dict[str, dict[str, str]]) -> None:
        self.containers = containers
        self.removed: list[str] = []

    def labelled(self, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        return [
            (cid, found)
            for cid, found in self.containers.items()
            if all(found.get(k) == v for k, v in labels.items())
        ]

    def remove_container(self, container_id: str) -> None:
        self.removed.append(container_id)


def test_this_process_is_alive_by_its_own_labels() -> None:
    labels = owner_labels("box:me")
    assert labels[AGENT_LABEL] == "box:me"
    assert labels[PID_LABEL] == str(os.getpid())
    assert agent_alive(labels)


def test_a_reused_pid_does_not_keep_a_dead_agent_alive() -> None:
    assert not agent_alive({**owner_labels("box:me"), STARTED_LABEL: "1.0"})


def test_a_container_without_agent_labels_is_left_alone() -> None:
    assert agent_alive({"clearq": "task"})
    assert agent_alive({PID_LABEL: "not a pid", STARTED_LABEL: "1.0"})


def test_only_this_hosts_dead_agents_containers_are_removed() -> None:
    alive = owner_labels("box:alive")
    dead = {**alive, AGENT_LABEL: "box:dead", STARTED_LABEL: "1.0"}
    engine = FakeContainers(
        {
            "dead": dead,
            "alive": alive,
            "elsewhere": {**dead, HOST_LABEL: f"not-{socket.gethostname()}"},
        }
    )
    assert remove_dead_agents_containers(engine) == [("dead", "box:dead")]
    assert engine.removed == ["dead"]
