"""What an operator sees of ``clearq agent``: its words on Ctrl-C, and its refusals to start.

Real agent processes and real signals; the GPU checks ask this machine's own NVML, so
each test says what holds with the GPUs found here.
"""

from __future__ import annotations

import signal
from pathlib import Path

from clearq.models import TaskStatus
from clearq.runtime.gpu_metrics import GpuReader
from clearq.scheduler import Store
from tests.acceptance.conftest import AGENT_WAIT_SECONDS, Agents, Cli
from tests.acceptance.test_agent import job, wait_for, wait_for_log
from tests.acceptance.test_agent import repo as repo  # the fixture

WAITING = "stopping: waiting up to 600 s for 1 task; Ctrl-C again to stop it now"


def test_ctrl_c_says_what_the_agent_does_and_twice_stops_and_requeues_now(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "long", "q", sleep=600)
    agent = agents.start("-q", "q", "--grace", "600", "--stop-grace", "2")
    wait_for_log(store, task_id, "long starts")
    agent.send_signal(signal.SIGINT)
    agents.wait_for_output(0, WAITING)
    assert store.tasks.get(task_id).status is TaskStatus.RUNNING  # the grace has begun
    agent.send_signal(signal.SIGINT)
    # Without the second Ctrl-C the agent would wait the whole 600 s grace.
    assert agent.wait(timeout=AGENT_WAIT_SECONDS) == 0
    out = agents.output(0)
    assert "stopping now: stopping 1 task and putting it back in its queue" in out
    task = store.tasks.get(task_id)
    assert (task.status, task.attempt) == (TaskStatus.QUEUED, 1)


def test_sigterm_says_the_same_and_an_idle_agent_says_it_has_nothing_running(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    idle = agents.start("-q", "q")
    agents.wait_for_output(0, "serving q")
    idle.send_signal(signal.SIGTERM)
    assert idle.wait(timeout=AGENT_WAIT_SECONDS) == 0
    assert "stopping: no task is running" in agents.output(0)
    task_id = job(store, repo, "long", "q", sleep=600)
    busy = agents.start("-q", "q", "--grace", "600", "--stop-grace", "2")
    wait_for(store, task_id, [TaskStatus.RUNNING])
    wait_for_log(store, task_id, "long starts")
    busy.send_signal(signal.SIGTERM)
    agents.wait_for_output(1, WAITING)
    busy.send_signal(signal.SIGTERM)
    assert busy.wait(timeout=AGENT_WAIT_SECONDS) == 0
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


def test_an_agent_refuses_a_queue_that_does_not_exist_unless_told_to_create_it(
    cli: Cli, store: Store
) -> None:
    store.queues.create("there")
    error = cli.fails("agent", "-q", "there", "-q", "nope", "--skip-env", "--once")
    assert error == (
        "error: no queue named 'nope': create it first (`clearq queue create nope`) "
        "or start the agent with --create-queue"
    )
    done = cli.run(
        "agent", "-q", "nope", "--create-queue", "--skip-env", "--idle-exit", "0.5", check=False
    )
    assert done.returncode == 0, done.stderr
    assert "created queue nope" in done.stderr
    assert "nope" in {q.name for q in store.queues.list()}


def test_gpus_this_machine_does_not_have_are_refused(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    count, _ = GpuReader.probe()
    devices = f"0,{max(count, 1)}"  # one past the last device found
    error = cli.fails("agent", "-q", "q", "--skip-env", "--gpus", devices, "--once")
    if count == 0:
        assert f"error: --gpus {devices}: no GPU was found on this machine" in error
    else:
        assert f"this machine has no GPU {count}" in error


def test_all_gpus_shared_on_a_machine_without_any_says_none_was_found(
    cli: Cli, store: Store
) -> None:
    store.queues.create("q")
    args = ("agent", "-q", "q", "--skip-env", "--gpus", "all", "--dynamic-gpus")
    count, why = GpuReader.probe()
    if count == 0:
        error = cli.fails(*args, "--once")
        assert error.startswith("error: --gpus all: no GPU was found on this machine")
        assert why in error
        assert "give --gpus" not in error
    else:  # here the devices are found and shared
        done = cli.run(*args, "--idle-exit", "0.5", check=False)
        assert done.returncode == 0, done.stderr
