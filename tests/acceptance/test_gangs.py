"""Gang tasks as a user runs them: ``nodes=N`` ranks on N real ``clearq agent`` processes.

Each rank runs a real ``torch.distributed`` (gloo) all-reduce with the variables its
agent gives it; a rank killed mid-run stops the whole gang, which is retried as one task;
a gang that cannot fill gives its agents back after the bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import AGENT_WAIT_SECONDS, Agents
from tests.conftest import on_one_database

pytest.importorskip("torch")

WAIT_SECONDS = 120

# Rank r adds r + 1; every rank must see the sum. With "hang" set, rank 1 of attempt 1
# writes its pid and sleeps before the all-reduce, to be killed there.
ALL_REDUCE = """
import datetime, json, os, sys, time
import torch
import torch.distributed as dist
from clearq import Task

task = Task.init()
params = task.connect({"nodes": 2, "marks": "", "hang": 0, "timeout": 60})
facts = task.launch_multi_node(params["nodes"])
attempt = int(os.environ["CLEARQ_ATTEMPT"])
mark = {"attempt": attempt, "pid": os.getpid(), "facts": facts,
        "env": {k: os.environ[k] for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE",
                                            "RANK", "NODE_RANK", "LOCAL_RANK")}}
with open(params["marks"], "a") as f:
    f.write(json.dumps(mark) + "\\n")
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=params["timeout"]))
if params["hang"] and attempt == 1 and facts["node_rank"] == 1:
    time.sleep(600)
x = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(x)
print(f"all-reduce: {x.item():g}", flush=True)
dist.destroy_process_group()
"""


# The task's code starts torchrun on its node with no options: each agent's rank gives it
# the gang's nodes, its node rank, rank 0's address and port, and a process per GPU.
# torchrun's processes (LOCAL_WORLD_SIZE set) all-reduce RANK + 1 across the whole world.
TORCHRUN = """
import datetime, json, os, subprocess, sys
if "LOCAL_WORLD_SIZE" in os.environ:
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    x = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(x)
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK")
    mark = {**{k: os.environ[k] for k in keys}, "sum": x.item()}
    with open(os.environ["MARKS"], "a") as f:
        f.write(json.dumps(mark) + "\\n")
    dist.destroy_process_group()
    sys.exit(0)
from clearq import Task
task = Task.init()
params = task.connect({"marks": ""})
env = {**os.environ, "MARKS": params["marks"]}
launch = [sys.executable, "-m", "torch.distributed.run", __file__]
sys.exit(subprocess.run(launch, env=env, check=False).returncode)
"""


def gang_task(
    store: Store,
    nodes: int,
    marks: Path,
    *,
    hang: bool = False,
    max_retries: int = 0,
    timeout: int = 60,
) -> uuid.UUID:
    spec = TaskSpec(
        project="gangs",
        name=f"all-reduce x{nodes}",
        script=Script(source=ALL_REDUCE, entry_point="all_reduce.py"),
        parameters={
            "General/nodes": str(nodes),
            "General/marks": str(marks),
            "General/hang": str(int(hang)),
            "General/timeout": str(timeout),
        },
        max_retries=max_retries,
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q", nodes=nodes)
    return task_id


def marks_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def logs_of(store: Store, task_id: uuid.UUID) -> str:
    return "".join(line.text for line in store.outputs.logs(task_id))


# Two ranks on SQLite, three on PostgreSQL: each count and each database once.
@pytest.mark.parametrize(
    ("store_url", "nodes"), [("sqlite", 2), ("postgres", 3)], indirect=["store_url"]
)
def test_a_gang_all_reduces_across_its_ranks(
    store: Store, agents: Agents, tmp_path: Path, nodes: int
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = gang_task(store, nodes, marks)
    procs = [agents.start("-q", "q", "--once", "--name", f"a{i}") for i in range(nodes)]
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=AGENT_WAIT_SECONDS) == 0, agents.output(i)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    assert (task.attempt, task.nodes) == (1, nodes)
    seen = marks_of(marks)
    ranks = sorted(int(m["env"]["RANK"]) for m in seen)  # type: ignore[index]
    assert ranks == list(range(nodes))
    for m in seen:
        env = m["env"]
        assert env["WORLD_SIZE"] == str(nodes)  # type: ignore[index]
        assert env["NODE_RANK"] == env["RANK"]  # type: ignore[index]
        assert env["LOCAL_RANK"] == "0"  # type: ignore[index]
        facts = m["facts"]
        assert facts["total_num_nodes"] == nodes  # type: ignore[index]
        assert facts["master_port"] == int(env["MASTER_PORT"])  # type: ignore[index]
    assert len({m["env"]["MASTER_PORT"] for m in seen}) == 1  # type: ignore[index]
    logs = logs_of(store, task_id)
    total = nodes * (nodes + 1) // 2
    for rank in range(nodes):
        assert f"[rank {rank}] all-reduce: {total}\n" in logs
    members = store.gangs.members(task_id)
    assert [rank for rank, _, _ in members] == list(range(nodes))
    assert {worker for _, worker, _ in members} == {
        f"{socket.gethostname()}:a{i}" for i in range(nodes)
    }
    assert {state for _, _, state in members} == {"completed"}


def test_a_rank_killed_mid_run_stops_the_gang_which_is_retried_as_one(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = gang_task(store, 2, marks, hang=True, max_retries=1)
    for i in range(2):
        agents.start("-q", "q", "--idle-exit", "3", "--name", f"a{i}")
    wait_until(lambda: len(marks_of(marks)) == 2, "both ranks of attempt 1")
    first = {m["env"]["RANK"]: m["pid"] for m in marks_of(marks)}  # type: ignore[index]
    time.sleep(1)  # in init_process_group or past it: either way mid-run
    os.kill(int(first["1"]), signal.SIGKILL)  # type: ignore[call-overload]
    wait_until(lambda: store.tasks.get(task_id).status is TaskStatus.COMPLETED, "attempt 2")
    task = store.tasks.get(task_id)
    assert task.attempt == 2
    assert task.retries == 1
    history = [(e.status, e.attempt, e.reason) for e in store.tasks.history(task_id)]
    retried = [r for s, a, r in history if s is TaskStatus.QUEUED and a == 1]
    assert retried, history
    assert "rank" in retried[0]
    wait_until(lambda: not _alive(int(first["0"])), "rank 0 of attempt 1 to be stopped")  # type: ignore[call-overload]
    second = [m for m in marks_of(marks) if m["attempt"] == 2]
    assert sorted(m["env"]["RANK"] for m in second) == ["0", "1"]  # type: ignore[index]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@on_one_database("sqlite")
def test_a_gang_that_cannot_fill_gives_its_agents_back(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    gang = gang_task(store, 3, tmp_path / "marks")
    env = {"CLEARQ_GANG_WAIT_SECONDS": "2"}
    for i in range(2):
        agents.start("-q", "q", "--name", f"a{i}", env=env)
    wait_until(lambda: len(store.gangs.members(gang)) == 2, "two of three ranks to wait")
    # An ordinary task behind the gang still runs: the waiting agents give their ranks
    # back after the bound and take other work.
    plain = store.tasks.create(
        TaskSpec(
            project="gangs",
            name="plain",
            script=Script(source="print('plain')\n", entry_point="plain.py"),
        )
    ).id
    store.queues.enqueue(plain, "q")
    wait_until(lambda: store.tasks.get(plain).status is TaskStatus.COMPLETED, "the plain task")
    assert store.tasks.get(gang).status is TaskStatus.QUEUED
    assert all(state == "waiting" for _, _, state in store.gangs.members(gang))


@on_one_database("postgres")
def test_torchrun_started_by_the_task_runs_a_process_per_gpu_on_every_rank(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    spec = TaskSpec(
        project="gangs",
        name="torchrun x2",
        script=Script(source=TORCHRUN, entry_point="launch.py"),
        parameters={"General/marks": str(marks)},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q", nodes=2)
    # Two "GPUs" per agent (not checked against devices: torch's CPU build ignores them).
    gpus = ("--gpus", "0,1", "--unchecked-gpus")
    procs = [agents.start("-q", "q", "--once", "--name", f"a{i}", *gpus) for i in range(2)]
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=AGENT_WAIT_SECONDS) == 0, agents.output(i)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    seen = marks_of(marks)
    assert sorted(int(m["RANK"]) for m in seen) == [0, 1, 2, 3]  # type: ignore[call-overload]
    assert {(m["WORLD_SIZE"], m["LOCAL_WORLD_SIZE"]) for m in seen} == {("4", "2")}
    assert sorted((m["GROUP_RANK"], m["LOCAL_RANK"]) for m in seen) == [  # type: ignore[type-var]
        ("0", "0"),
        ("0", "1"),
        ("1", "0"),
        ("1", "1"),
    ]
    assert {m["sum"] for m in seen} == {10.0}  # 1 + 2 + 3 + 4 on every process
