"""The tests' zygote (tests/forkserver.py) starts ``clearq`` as a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import forkserver

pytestmark = pytest.mark.skipif(not forkserver.enabled(), reason="CLEARQ_TEST_FORK=0")


def _env(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    return {**env, "CLEARQ_HOME": str(home), **more}


def test_a_command_gets_its_own_environment_folder_streams_and_exit_status(
    tmp_path: Path,
) -> None:
    argv = [str(forkserver.CLEARQ), "queue", "create", "q"]
    made = forkserver.run(argv, env=_env(tmp_path / "a"), timeout=60, cwd=str(tmp_path))
    assert (made.returncode, made.stderr) == (0, "")
    assert "created queue q" in made.stdout
    assert (tmp_path / "a").is_dir()  # CLEARQ_HOME as this call gave it, not the zygote's
    again = forkserver.run(argv, env=_env(tmp_path / "a"), timeout=60)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == "error: a queue named 'q' exists already\n"
    other = forkserver.run(argv, env=_env(tmp_path / "b"), timeout=60)
    assert other.returncode == 0  # a fresh process: nothing of the last command is left
    usage = forkserver.run([str(forkserver.CLEARQ), "no-such"], env=_env(tmp_path), timeout=60)
    assert usage.returncode == 2
    assert "No such command" in usage.stderr


def test_a_started_agent_is_a_process_that_signals_end_and_waits_time_out(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path / "home")
    assert forkserver.run([str(forkserver.CLEARQ), "queue", "create", "q"], env=env, timeout=60)
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = forkserver.spawn(
            [str(forkserver.CLEARQ), "agent", "-q", "q", "--skip-env"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert agent.pid != os.getpid()
    deadline = time.monotonic() + 60
    while "serving q" not in log.read_text():
        assert agent.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    with pytest.raises(subprocess.TimeoutExpired):
        agent.wait(timeout=0.2)
    agent.send_signal(signal.SIGTERM)  # as a user's Ctrl-C or kill: it stops cleanly
    assert agent.wait(timeout=60) == 0
    assert "stopping" in log.read_text()
    with log.open("ab") as out:
        killed = forkserver.spawn(
            [str(forkserver.CLEARQ), "agent", "-q", "q", "--skip-env"], env=env, stdout=out
        )
    killed.kill()
    assert killed.wait(timeout=60) == -signal.SIGKILL
