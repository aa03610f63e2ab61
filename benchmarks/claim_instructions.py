"""Client instructions per ``claim(1)`` + ``finish``: the store against the hand-written
ceiling, counted by valgrind's callgrind, so the machine's load moves the figure little
(CPU time per task on the shared 2-core machine swings by a factor of two).

Each side runs in a process of its own under ``valgrind --tool=callgrind
--instr-atstart=no``: it opens its connection, claims and finishes ``--warmup`` tasks
(psycopg prepares a statement after five runs), turns the instrumentation on
(``callgrind_control -i on``), claims and finishes ``--tasks`` tasks, and turns it off.
The queue is filled before each run, outside valgrind. Sides:

- ceiling: claim_throughput.py's hand-written psycopg loop (one autocommit statement to
  claim, one fenced UPDATE to complete);
- store:   ``store.claimer(w, [q]).claim(1)`` then ``store.leases.finish(fence, COMPLETED)``,
  the tree's clearq (and, with ``--baseline REF``, clearq as it was at REF, from
  ``git archive``).

Counted: the instructions of the Python process in user space (the kernel's share of a
round trip is not), so the figure is the client's share of a claim. The server's CPU per
task is in claim_throughput.py.

    python benchmarks/claim_instructions.py [--tasks 500] [--runs 1] [--baseline REF]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from common import (
    CEILING_CLAIM,
    CEILING_COMPLETE,
    REPO,
    baseline_tree,
    bench_database,
    ensure_queues,
    fill_queue,
    libpq_dsn,
    machine_note,
    open_store,
    reset_tasks,
)

from clearq.models import TaskStatus

HERE = Path(__file__).resolve().parent
QUEUE = "bench"
WORKER = "bench:cg"
_COLLECTED = re.compile(r"^totals: (\d+)", re.M)


def child(side: str, url: str, warmup: int, tasks: int) -> None:
    """In the valgrind process: warm up, count ``tasks`` claims and finishes, stop."""
    loop = _store_loop(url) if side == "store" else _ceiling_loop(url)
    loop(warmup)
    _instrumentation("on")
    loop(tasks)
    _instrumentation("off")


def _instrumentation(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def _store_loop(url: str) -> Callable[[int], None]:
    store = open_store(url)
    claimer = store.claimer(WORKER, [QUEUE])

    def loop(n: int) -> None:
        for _ in range(n):
            [claim] = claimer.claim(1)
            store.leases.finish(claim.fence, TaskStatus.COMPLETED)

    return loop


def _ceiling_loop(url: str) -> Callable[[int], None]:
    conn = psycopg.connect(libpq_dsn(url), autocommit=True)
    qid = conn.execute("SELECT id FROM queues WHERE name = %s", (QUEUE,)).fetchone()[0]
    claim = {"qid": qid, "n": 1, "worker": WORKER, "lease": 600.0}

    def loop(n: int) -> None:
        for _ in range(n):
            [(task_id, attempt)] = conn.execute(CEILING_CLAIM, claim).fetchall()
            done = {"id": task_id, "attempt": attempt, "worker": WORKER}
            conn.execute(CEILING_COMPLETE, done)

    return loop


def counted(side: str, url: str, tree: Path, warmup: int, tasks: int, out: Path) -> int:
    """Instructions of one side's counted loop, in its own valgrind process."""
    result = out / f"cg.{side}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE)])}
    run = subprocess.run(
        [
            *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
            f"--callgrind-out-file={result}",
            *(sys.executable, __file__, "--child", side, url, str(warmup), str(tasks)),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"the {side} run failed under valgrind:\n{run.stderr[-4000:]}")
    found = _COLLECTED.search(result.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no instruction total in {result}")
    return int(found.group(1))


def main() -> None:
    """Count each side ``--runs`` times on a fresh queue; print the medians per task."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500, help="counted claims per run")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted claims first")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--baseline", help="git ref of a baseline clearq, counted beside")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, url, warmup, tasks = args.child
        child(side, url, int(warmup), int(tasks))
        return
    print(machine_note())
    sides: dict[str, tuple[str, Path]] = {"ceiling": ("ceiling", REPO), "store": ("store", REPO)}
    if args.baseline:
        sides[f"store at {args.baseline}"] = ("store", baseline_tree(args.baseline))
    counts: dict[str, list[int]] = {name: [] for name in sides}
    with bench_database("instructions") as url, tempfile.TemporaryDirectory() as tmp:
        with open_store(url) as store:
            ensure_queues(store, QUEUE)
        for _ in range(args.runs):
            for name, (side, tree) in sides.items():
                with open_store(url) as store:
                    reset_tasks(store)
                    fill_queue(store, QUEUE, args.warmup + args.tasks)
                counts[name].append(counted(side, url, tree, args.warmup, args.tasks, Path(tmp)))
    ceiling = statistics.median(counts["ceiling"]) / args.tasks
    print(f"client instructions per claim(1) + finish, median of {args.runs} run(s)")
    for name, values in counts.items():
        per_task = statistics.median(values) / args.tasks
        spread = f"{min(values) / args.tasks / 1e3:,.0f}-{max(values) / args.tasks / 1e3:,.0f}"
        print(f"  {name:<24}{per_task / 1e3:>8,.0f} k  ({spread} k)  x{per_task / ceiling:.2f}")
    print(machine_note())


if __name__ == "__main__":
    main()
