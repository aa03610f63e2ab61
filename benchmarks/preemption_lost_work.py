"""Seconds of training a preempted task redoes, with and without the checkpoint hook.

A task "trains" STEPS steps of STEP_SECONDS each (a sleep), logging each finished step.
``clearq task run ID`` runs it on an SQLite store; after PREEMPT_AFTER seconds of
training the runner gets SIGTERM (what Slurm or a spot notice sends): the task is
preempted and goes back to its queue. A second ``clearq task run ID`` finishes it. Lost
work = steps run beyond STEPS (steps done twice) x STEP_SECONDS.

With the hook the task registers ``task.register_abort_callback`` to
``save_checkpoint({"step": n})`` and resumes from ``get_checkpoint()``; the baseline,
measured in the same run, is the same task without it (it starts over).

    python benchmarks/preemption_lost_work.py [--runs 3] [--steps 100] [--step-seconds 0.05]
        [--preempt-after 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import table

from clearq.config import Settings
from clearq.models import Script, TaskSpec
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
TRAIN = """
import sys, time
from clearq import Task

task = Task.init()
p = task.connect({"steps": 0, "step_seconds": 0.0, "marks": "", "hook": 1})
saved = task.get_checkpoint() if p["hook"] else None
state = {"step": saved["step"] if saved else 0}
if p["hook"]:
    task.register_abort_callback(lambda: task.save_checkpoint({"step": state["step"]}))
while state["step"] < p["steps"]:
    time.sleep(p["step_seconds"])
    with open(p["marks"], "a") as f:
        f.write(f"{state['step']}\\n")
    state["step"] += 1
"""


def one_run(folder: Path, *, hook: bool, steps: int, step_seconds: float, after: float) -> float:
    """Seconds of training redone by one preempted task."""
    marks = folder / "marks"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_HOME=str(folder / "home"), CLEARQ_DATABASE_URL=f"sqlite:///{folder}/db")
    store = Store(env["CLEARQ_DATABASE_URL"], settings=Settings(home=folder / "home"))
    store.queues.create("q")
    parameters = {
        "General/steps": str(steps),
        "General/step_seconds": str(step_seconds),
        "General/marks": str(marks),
        "General/hook": str(int(hook)),
    }
    spec = TaskSpec(
        project="bench",
        name="train",
        script=Script(source=TRAIN, entry_point="train.py"),
        parameters=parameters,
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    run = [str(CLEARQ), "task", "run", str(task_id), "--skip-env", "--stop-grace", "30"]
    first = subprocess.Popen(run, env=env, stdout=subprocess.DEVNULL)
    wait_for_training(marks, after)
    first.send_signal(signal.SIGTERM)
    if first.wait(timeout=120) != 5:  # OnceExit.REQUEUED
        raise SystemExit(f"the first run was not preempted (exit {first.returncode})")
    subprocess.run(run, env=env, stdout=subprocess.DEVNULL, check=True, timeout=600)
    done = len(marks.read_text().splitlines())
    store.close()
    check_history(folder, task_id)
    return (done - steps) * step_seconds


def wait_for_training(marks: Path, seconds: float) -> None:
    """Until the task has trained for ``seconds`` (its first step's end, then the clock)."""
    deadline = time.monotonic() + 120
    while not marks.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the task never started training")
        time.sleep(0.01)
    time.sleep(seconds)


def check_history(folder: Path, task_id: uuid.UUID) -> None:
    with Store(f"sqlite:///{folder}/db", settings=Settings(home=folder / "home")) as store:
        statuses = [e.status.value for e in store.tasks.history(task_id)]
    if "preempted" not in statuses or statuses[-1] != "completed":
        raise SystemExit(f"unexpected history: {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument("--preempt-after", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    for hook in (False, True):
        lost = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                lost.append(
                    one_run(
                        Path(tmp),
                        hook=hook,
                        steps=args.steps,
                        step_seconds=args.step_seconds,
                        after=args.preempt_after,
                    )
                )
        lost.sort()
        label = "with checkpoint hook" if hook else "baseline: no hook (starts over)"
        rows.append([label, lost[0], lost[len(lost) // 2], lost[-1]])
    print(
        f"preempted after ~{args.preempt_after:g} s of a {args.steps} x "
        f"{args.step_seconds:g} s training; {args.runs} runs; load: {os.getloadavg()[0]:.2f}"
    )
    print(table(["seconds of training redone", "min", "median", "max"], rows))


if __name__ == "__main__":
    main()
