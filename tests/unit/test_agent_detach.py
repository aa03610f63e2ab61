"""``clearq agent --detached`` / ``--stop``'s pieces: the child's command line, pid files.

The round trip with real processes is in ``tests/acceptance/test_workers_control.py``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from clearq.cli.agent_detach import CHILD_FLAG, child_argv, pid_file, pid_path, stop_detached
from clearq.errors import InvalidInput


def test_the_background_agent_runs_the_same_command_without_detached() -> None:
    argv = ["--database-url", "sqlite:///x.db", "agent", "-q", "q", "--detached", "--name", "n"]
    assert child_argv(argv) == [
        sys.executable,
        "-m",
        "clearq.cli",
        "--database-url",
        "sqlite:///x.db",
        "agent",
        "-q",
        "q",
        "--name",
        "n",
        CHILD_FLAG,
    ]


def test_a_pid_file_is_removed_only_while_it_is_still_ours(tmp_path: Path) -> None:
    path = pid_path(tmp_path, "a")
    with pid_file(path):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()
    with pid_file(path):
        path.write_text("1\n")  # another agent of that name took it over
    assert path.read_text() == "1\n"


def test_stop_refuses_an_agent_of_another_machine(tmp_path: Path) -> None:
    other = "not-" + socket.gethostname()
    with pytest.raises(InvalidInput, match=f"use `clearq workers drain {other}:a`"):
        stop_detached(tmp_path, f"{other}:a", say=lambda _: None)
