"""Pipelines run by real agents, with no controller process: a diamond with a retried
step and references between steps; a pipeline whose processes are killed mid-way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.automation import Pipeline
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.sdk.task import Task, use_store
from tests.acceptance.conftest import Agents, Cli, read_marks
from tests.conftest import on_one_database
from tests.gitrepo import published

STEP = """
import json, os, sys, time
from clearq import Task

task = Task.init()
p = task.connect({"fail_first": 0, "marks": "", "input": "", "sleep": 0.0})
attempt = int(os.environ["CLEARQ_ATTEMPT"])
with open(p["marks"], "a") as f:
    f.write(json.dumps({"name": task.name, "attempt": attempt, "input": p["input"]}) + "\\n")
time.sleep(p["sleep"])
if p["fail_first"] and attempt == 1:
    sys.exit(5)
task.upload_artifact("out", {"step": task.name})
"""


def merge(a_id: str, out_url: str) -> dict[str, str]:
    """A function step: runs in its own task, its result becomes the artifact 'result'."""
    return {"a": a_id, "b_out": out_url}


@pytest.fixture
def base(store: Store, tmp_path: Path) -> Iterator[Task]:
    """A draft task running step.py from a repository with a local bare origin."""
    repository = published(tmp_path, {"step.py": STEP}, message="step")
    script = Script(
        repository=str(repository.origin), commit=repository.commit, entry_point="step.py"
    )
    spec = TaskSpec(project="pipes", name="step", script=script)
    use_store(store)
    yield Task.get_task(task_id=store.tasks.create(spec).id)
    use_store(None)


def diamond(base: Task, marks: Path, *, sleep: float = 0.0) -> Pipeline:
    m = {"General/marks": str(marks), "General/sleep": sleep}
    pipe = Pipeline("diamond", project="pipes")
    pipe.add_step("a", base, parameter_override=m)
    pipe.add_step(
        "b",
        base,
        parents=["a"],
        parameter_override={**m, "General/fail_first": 1, "General/input": "${a.id}"},
        max_retries=1,
    )
    pipe.add_function_step(
        "c", merge, {"a_id": "${a.id}", "out_url": "${b.artifacts.out.url}"}, parents=["a", "b"]
    )
    pipe.add_step(
        "d",
        base,
        parents=["b", "c"],
        parameter_override={**m, "General/input": "${c.artifacts.result.url}"},
    )
    return pipe


@on_one_database("sqlite")
def test_a_diamond_runs_across_two_agents_with_a_retried_step(
    store: Store, base: Task, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("default")
    marks = tmp_path / "marks.jsonl"
    pipe = diamond(base, marks).start()
    for name in ("one", "two"):
        agents.start("-q", "default", "--name", name, "--idle-exit", "3")
    statuses = pipe.wait(timeout=120)
    assert statuses == dict.fromkeys("abcd", TaskStatus.COMPLETED)
    runs = [(r["name"], r["attempt"]) for r in read_marks(marks)]
    assert runs == [("a", 1), ("b", 1), ("b", 2), ("d", 1)]
    tasks = pipe.steps()
    a_id = tasks["a"].id
    assert [r["input"] for r in read_marks(marks) if r["name"] == "b"] == [a_id, a_id]
    result = tasks["c"].load_artifact("result")
    assert result == {"a": a_id, "b_out": tasks["b"].artifacts["out"].uri}
    d_input = next(r["input"] for r in read_marks(marks) if r["name"] == "d")
    assert d_input == tasks["c"].artifacts["result"].uri
    b = tasks["b"].data
    assert (b.attempt, b.retries) == (2, 1)
    assert {t.data.worker.split(":")[-1] for t in tasks.values() if t.data.worker} <= {"one", "two"}


DRIVER = """
import sys
from clearq.automation import Pipeline
from clearq.sdk.task import Task
from tests.acceptance.test_pipeline import diamond
from pathlib import Path

pipe = diamond(Task.get_task(task_id=sys.argv[1]), Path(sys.argv[2]), sleep=float(sys.argv[3]))
pipe.start()
print(pipe.id, flush=True)
pipe.wait()
"""


@on_one_database("postgres")
def test_killing_the_driver_and_an_agent_mid_way_loses_no_finished_step(
    cli: Cli, store: Store, base: Task, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("default")
    marks = tmp_path / "marks.jsonl"
    short = {"CLEARQ_LEASE_SECONDS": "1.5"}
    repo_root = str(Path(__file__).resolve().parents[2])

    def driver() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", DRIVER, base.id, str(marks), "1.0"],
            cwd=repo_root,
            env={**cli.env, **short},
            stdout=subprocess.PIPE,
            text=True,
        )

    first_driver = driver()
    assert first_driver.stdout is not None
    run_id = first_driver.stdout.readline().strip()
    agent = agents.start("-q", "default", "--name", "doomed", env=short)
    deadline = time.monotonic() + 60
    while not any(r["name"] == "b" for r in (read_marks(marks) if marks.exists() else [])):
        assert time.monotonic() < deadline, "step b never started"
        time.sleep(0.1)
    agent.kill()  # mid-way through step b
    first_driver.kill()
    first_driver.wait()
    first_driver.stdout.close()

    second_driver = driver()
    assert second_driver.stdout is not None
    assert second_driver.stdout.readline().strip() == run_id  # the same run, resumed
    agents.start("-q", "default", "--name", "survivor", "--idle-exit", "3", env=short)
    assert second_driver.wait(timeout=120) == 0
    second_driver.stdout.close()
    steps = {"a", "b", "c", "d"}
    statuses = {t.name: t.status for t in store.tasks.list(project="pipes") if t.name in steps}
    assert statuses == dict.fromkeys("abcd", TaskStatus.COMPLETED)
    ran = [r["name"] for r in read_marks(marks)]
    assert ran.count("a") == 1  # finished before the kills: never run again
    assert ran.count("d") == 1
    assert len(store.tasks.list(project="pipes", name="diamond")) == 1


@on_one_database("sqlite")
def test_rerun_runs_a_step_and_its_descendants_only(
    store: Store, base: Task, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("default")
    marks = tmp_path / "marks.jsonl"
    pipe = diamond(base, marks).start()
    agents.start("-q", "default", "--idle-exit", "3")
    assert set(pipe.wait(timeout=120).values()) == {TaskStatus.COMPLETED}
    before = len(read_marks(marks))
    pipe.rerun("c")
    agents.start("-q", "default", "--idle-exit", "3")
    assert set(pipe.wait(timeout=120).values()) == {TaskStatus.COMPLETED}
    again = [r["name"] for r in read_marks(marks)[before:]]
    assert again == ["d"]  # c (a function step) and d ran again; a and b did not
    assert pipe.steps()["c"].load_artifact("result")["a"] == pipe.steps()["a"].id
