"""Slurm submit -> task running, through ``clearq slurm``, beside Slurm's own floor.

On this machine's Slurm (``.ci/slurm-up``) and an SQLite store: a task whose first line
writes the time is enqueued; the glue (``SlurmGlue.pass_once`` every 0.2 s, in this
process) holds and submits it; the job's ``clearq task run ID`` claims it and starts its
code. Measured: sbatch returned -> the task is ``running`` (claimed, on the database's
clock) and -> its code's first line; enqueue -> first line as a user sees it.

Baseline, same run: ``sbatch --wrap`` of a job that writes the time, sbatch returned ->
that line (Slurm's own scheduling and launch, the floor of any glue).

    python benchmarks/slurm_latency.py [--samples 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table

from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.runtime.slurm import GlueOptions, SlurmGlue
from clearq.runtime.slurmcli import Slurm
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
FIRST_LINE = "import sys, time; open(sys.argv[1], 'a').write(f'{time.time()}\\n')\n"
WAIT_SECONDS = 120


def first_line_time(path: Path, deadline: float) -> float:
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing was written to {path}")
        time.sleep(0.01)
    return float(path.read_text().split()[0])


def baseline(folder: Path, i: int) -> float:
    mark = folder / f"base-{i}"
    command = f"{sys.executable} -c \"import time; open('{mark}', 'w').write(str(time.time()))\""
    subprocess.run(
        ["sbatch", "--parsable", f"--output={folder}/base-%j.out", f"--wrap={command}"],
        check=True,
        capture_output=True,
    )
    submitted = time.time()
    return first_line_time(mark, time.monotonic() + WAIT_SECONDS) - submitted


def glue_sample(store: Store, glue: SlurmGlue, folder: Path, i: int) -> tuple[float, ...]:
    mark = folder / f"task-{i}"
    script = Script(source=FIRST_LINE, entry_point="first.py", arguments=(str(mark),))
    task_id = store.tasks.create(TaskSpec(project="bench", name=f"t{i}", script=script)).id
    enqueued = time.time()
    store.queues.enqueue(task_id, "q")
    deadline = time.monotonic() + WAIT_SECONDS
    submitted = None
    while submitted is None:
        if glue.pass_once().submitted:
            submitted = time.time()
        elif time.monotonic() > deadline:
            raise SystemExit("the glue never submitted the task")
        else:
            time.sleep(0.2)
    while (task := store.tasks.get(task_id)).status is TaskStatus.QUEUED:
        if time.monotonic() > deadline:
            raise SystemExit(f"the task never ran: {task.status_reason}")
        time.sleep(0.02)
    assert task.started_at is not None
    running = task.started_at.timestamp() - submitted
    code = first_line_time(mark, deadline)
    return running, code - submitted, code - enqueued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder}/db"
        os.environ["CLEARQ_HOME"] = str(folder / "home")
        store = Store(url, settings=Settings(home=folder / "home"))
        store.queues.create("q")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(folder / "home"))
        options = GlueOptions(
            queues=("q",),
            command=(str(CLEARQ),),
            folder=folder / "slurm",
            run_args=("--skip-env",),
            job_env=tuple(sorted(env.items())),
        )
        glue = SlurmGlue(store, Slurm(), options)
        base = sorted(baseline(folder, i) for i in range(args.samples))
        samples = [glue_sample(store, glue, folder, i) for i in range(args.samples)]
        store.close()
    rows = [["baseline: sbatch --wrap -> its first line", *spread(base)]]
    names = (
        "sbatch -> task running (claimed)",
        "sbatch -> task's first line",
        "enqueue -> task's first line",
    )
    for k, name in enumerate(names):
        rows.append([name, *spread(sorted(s[k] for s in samples))])
    print(f"{args.samples} samples; load: {os.getloadavg()[0]:.2f}")
    print(table(["seconds", "min", "median", "max"], rows))


def spread(values: list[float]) -> list[float]:
    return [values[0], values[len(values) // 2], values[-1]]


if __name__ == "__main__":
    main()
