"""clearq in one minute, on the embedded SQLite default (``~/.clearq``).

    python examples/quickstart.py

1. makes a small project (a git repository with a local bare origin) holding a training
   script, and runs the script by hand: ``Task.init`` captures it;
2. clones the task with overridden parameters (an argparse flag and a connected value)
   and puts the clone in the ``default`` queue;
3. runs ``clearq agent --once``, which rebuilds the code in a workspace, builds (or
   reuses) a cached virtual environment for it and runs it;
4. prints how the clone ended, its parameters, its loss and its console output.

Run it twice: the second time the agent reuses the environment it built the first time.
The project is made in ``~/.clearq/quickstart`` (made afresh each run); the tasks stay
in the store (``clearq task list``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from clearq import Task
from clearq.sdk.task import default_store

TRAIN = '''
"""Fit y = 3x + 1 by gradient descent, reporting into clearq."""
import argparse
import random

from clearq import Task
from clearq.sdk.task import default_store

task = Task.init(project_name="quickstart", task_name="linear-regression")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args()
config = task.connect({"epochs": 20, "seed": 0})

rng = random.Random(config["seed"])
xs = [rng.uniform(-1, 1) for _ in range(200)]
ys = [3 * x + 1 + rng.gauss(0, 0.1) for x in xs]
w = b = 0.0
for epoch in range(config["epochs"]):
    gw = sum(2 * (w * x + b - y) * x for x, y in zip(xs, ys)) / len(xs)
    gb = sum(2 * (w * x + b - y) for x, y in zip(xs, ys)) / len(xs)
    w, b = w - args.lr * gw, b - args.lr * gb
    loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
    task.get_logger().report_scalar("loss", "train", loss, epoch)
print(f"lr={args.lr} epochs={config['epochs']}: w={w:.3f} b={b:.3f} loss={loss:.4f}")
'''


def step(text: str) -> None:
    """Say what happens next."""
    print(f"\n== {text}", flush=True)


def run(*argv: str, cwd: Path | None = None) -> None:
    """Run a command, showing its output; stop the demo if it fails."""
    subprocess.run(list(argv), cwd=cwd, check=True)


def make_project(root: Path) -> Path:
    """A git repository whose origin is a local bare repository, holding train.py."""
    origin, work = root / "origin.git", root / "project"
    run("git", "init", "-q", "--bare", str(origin))
    run("git", "clone", "-q", str(origin), str(work))
    (work / "train.py").write_text(TRAIN.lstrip())
    run("git", "add", "train.py", cwd=work)
    identity = ("-c", "user.name=clearq demo", "-c", "user.email=demo@clearq.invalid")
    run("git", *identity, "commit", "-q", "-m", "train.py", cwd=work)
    run("git", "push", "-q", "origin", "HEAD", cwd=work)
    return work


def main() -> None:
    """Capture, clone with overrides, enqueue, run with an agent, show the result."""
    store = default_store()
    root = store.settings.home_dir / "quickstart"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if "default" not in {q.name for q in store.queues.list()}:
        store.queues.create("default")
    project = make_project(root)
    step("1. run the training script by hand: Task.init captures it")
    run(sys.executable, "train.py", "--lr", "0.05", cwd=project)

    step("2. clone it with --lr 0.2 and 40 epochs, enqueue the clone on 'default'")
    base = Task.get_tasks(project_name="quickstart", task_name="linear-regression")[0]
    clone = Task.clone(base, name="lr=0.2")
    clone.set_parameters({"Args/lr": 0.2, "General/epochs": 40})
    Task.enqueue(clone, queue_name="default")
    print(f"task {clone.id} queued")

    step("3. an agent takes it, rebuilds its code and a cached venv, and runs it")
    clearq = shutil.which("clearq") or str(Path(sys.executable).with_name("clearq"))
    run(clearq, "agent", "--queue", "default", "--once", "--allow-local-repositories")

    step("4. the result")
    clone.reload()
    env = clone.data.runtime.get("env", {})
    how = "reused from the cache" if env.get("hit") else "built"
    print(f"status: {clone.status}, environment {env.get('key')} {how}")
    print(f"parameters: {clone.get_parameters()}")
    print(f"loss: {clone.get_last_scalar_metrics()['loss']['train']}")
    print("console output:")
    print(textwrap.indent("".join(clone.get_reported_console_output()), "    "))


if __name__ == "__main__":
    main()
