"""An operator's hold on workers, through the real ``clearq`` command and real agents.

``clearq workers drain|pause|resume`` from another process (as from another machine:
only the database is shared), and ``clearq agent --detached`` / ``--stop``, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import AGENT_WAIT_SECONDS, Agents, Cli
from tests.acceptance.test_agent import wait_for, wait_for_log
from tests.gitrepo import published

WAITER = """
import os, sys, time
from clearq import Task

task = Task.init()
params = task.connect({"until": ""})
print(f"{task.name} waits", flush=True)
deadline = time.monotonic() + 300
while params["until"] and not os.path.exists(params["until"]):
    if time.monotonic() > deadline:
        sys.exit(f"{params['until']} never appeared")
    time.sleep(0.1)
print(f"{task.name} ends", flush=True)
"""
LOOK_AWAY_SECONDS = 2.0
"""How long a paused agent is left with a queued task before it is resumed: long enough
for an agent that ignored the pause to have claimed it (it polls every 0.25 s)."""


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    repository = published(tmp_path, {"waiter.py": WAITER}, message="waiter")
    return repository.origin, repository.commit


def waiter(store: Store, repo: tuple[Path, str], name: str, until: Path | None) -> uuid.UUID:
    """Enqueue in ``q`` a task that ends once ``until`` exists (None: at once)."""
    origin, commit = repo
    script = Script(repository=str(origin), commit=commit, entry_point="waiter.py")
    spec = TaskSpec(
        project="ops", name=name, script=script, parameters={"General/until": str(until or "")}
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    return task_id


def worker_row(cli: Cli, worker_id: str) -> dict[str, object]:
    rows = {row["id"]: row for row in cli.json("workers", "list")}
    return rows[worker_id]


def test_drain_lets_the_running_task_finish_and_the_agent_exits_without_claiming_the_next(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    release = tmp_path / "release"
    first = waiter(store, repo, "first", release)
    agent = agents.start("-q", "q", "--name", "night")
    wait_for_log(store, first, "first waits")
    second = waiter(store, repo, "second", None)
    worker_id = f"{socket.gethostname()}:night"
    drained = cli.run("workers", "drain", "night").stdout
    assert drained == f"{worker_id} draining: it finishes its running tasks and exits\n"
    row = worker_row(cli, worker_id)
    assert (row["command"], row["tasks"]) == ("drain", [str(first)])
    assert "draining" in cli.run("workers").stdout
    release.touch()
    assert agent.wait(timeout=AGENT_WAIT_SECONDS) == 0, agents.output(0)
    out = agents.output(0)
    assert "drained: no task is running; exiting" in out
    assert store.tasks.get(first).status is TaskStatus.COMPLETED
    assert store.tasks.get(second).status is TaskStatus.QUEUED
    assert cli.json("workers") == []


def test_pause_stops_claims_until_resume_while_the_agent_stays_up(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    agent = agents.start("-q", "q", "--name", "day")
    agents.wait_for_output(0, "serving q")
    worker_id = f"{socket.gethostname()}:day"
    paused = cli.run("workers", "pause", worker_id).stdout
    assert paused == f"{worker_id} paused: it claims nothing until resumed\n"
    agents.wait_for_output(0, "paused (clearq workers pause)")
    task_id = waiter(store, repo, "later", None)
    time.sleep(LOOK_AWAY_SECONDS)
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
    assert worker_row(cli, worker_id)["command"] == "pause"
    assert agent.poll() is None  # still up, still heartbeating
    resumed_at = time.time()
    assert cli.run("workers", "resume", "day").stdout == f"{worker_id} resumed: it claims again\n"
    wait_for(store, task_id, [TaskStatus.COMPLETED])
    started = store.tasks.get(task_id).started_at
    assert started is not None
    assert started.timestamp() >= resumed_at - 0.001
    assert worker_row(cli, worker_id)["command"] is None
    assert "resumed (clearq workers resume): claiming again" in agents.output(0)


def test_outside_its_claim_windows_an_agent_claims_nothing_and_a_bad_window_is_refused(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    assert cli.fails("agent", "-q", "q", "--skip-env", "--uptime", "mon-fro 20:00-08:00") == (
        "error: --uptime 'mon-fro 20:00-08:00': 'fro' is not a day: use mon, tue, wed, thu, "
        "fri, sat, sun; for example 'mon-fri 20:00-08:00', 'sat,sun' or "
        "'09:00-17:00 Europe/Berlin'"
    )
    agent = agents.start("-q", "q", "--downtime", "00:00-24:00")
    agents.wait_for_output(0, "outside its claim windows (downtime 00:00-24:00): claiming nothing")
    task_id = waiter(store, repo, "never", None)
    time.sleep(LOOK_AWAY_SECONDS)
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
    assert agent.poll() is None  # up and heartbeating, only not claiming


def test_draining_a_worker_that_is_not_there_says_so(cli: Cli, store: Store) -> None:
    assert cli.fails("workers", "drain", "ghost") == (
        "error: no worker 'ghost' is registered: `clearq workers list` shows their names"
    )


def test_a_detached_agent_serves_in_the_background_and_stop_ends_it(
    cli: Cli, store: Store, repo: tuple[Path, str], tmp_path: Path
) -> None:
    store.queues.create("q")
    home = tmp_path / "home"
    started = cli.run("agent", "--detached", "-q", "q", "--skip-env", "--name", "bg").stdout
    worker_id = f"{socket.gethostname()}:bg"
    log = home / "agents" / "bg.log"
    first, second = started.splitlines()
    pid = int(first.split("(pid ")[1].split(")")[0])
    try:
        assert first == f"started agent {worker_id} (pid {pid}), logging to {log}"
        assert second == "stop it with `clearq agent --stop bg`"
        assert (home / "agents" / "bg.pid").read_text() == f"{pid}\n"
        assert [w["id"] for w in cli.json("workers")] == [worker_id]
        task_id = waiter(store, repo, "background", None)
        wait_for(store, task_id, [TaskStatus.COMPLETED])
        again = cli.fails("agent", "--detached", "-q", "q", "--skip-env", "--name", "bg")
        assert "a detached agent named 'bg' is running already" in again
        stopped = cli.run("agent", "--stop").stdout
        assert stopped.splitlines()[-1] == "stopped bg"
        assert not _running(pid)
    finally:
        if _running(pid):
            psutil.Process(pid).kill()
    assert "serving q as" in log.read_text()
    assert not (home / "agents" / "bg.pid").exists()
    assert cli.json("workers") == []
    assert cli.fails("agent", "--stop") == (
        f"error: no detached agent is running on this machine (none in {home / 'agents'}): "
        "start one with `clearq agent --detached -q QUEUE`"
    )
    assert cli.fails("agent", "--stop", "bg") == (
        "error: no detached agent named 'bg' is running on this machine"
    )


def test_a_detached_agent_that_cannot_start_says_why(cli: Cli, store: Store) -> None:
    error = cli.fails("agent", "--detached", "-q", "missing", "--skip-env")
    assert "the detached agent exited with status 1 before serving" in error
    assert "no queue named 'missing'" in error


def test_a_stale_pid_file_is_removed_and_said_so(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "home" / "agents"
    folder.mkdir(parents=True)
    (folder / "old.pid").write_text(f"{os.getpid()}\n")  # alive, but not an agent
    result = cli.run("agent", "--stop", check=False)
    assert result.returncode == 1
    assert f"removed the stale pid file {folder / 'old.pid'}" in result.stdout
    assert "no detached agent is running on this machine" in result.stderr
    assert not (folder / "old.pid").exists()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
