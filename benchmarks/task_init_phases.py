"""Where ``Task.init``'s time goes: imports, git capture, package capture, store writes.

The sample repository and script of ``task_init_overhead.py`` (50 modules, a local bare
origin, one uncommitted edit, one untracked file, a fresh SQLite store) run under a small
harness that times each phase of a run by hand, from the outside: it wraps the functions
``clearq.sdk.init`` calls for each step (nothing in clearq knows it is measured), runs
the script as ``__main__`` and records, with an ``atexit`` hook registered before
clearq's (so it runs after them), how long the run's end took. Phases:

- imports: ``from clearq import Task`` and the modules ``Task.init`` itself needs;
- store link: opening the run's link (``open_run_link``: connect, schema check);
- git capture: ``capture_script`` (the git commands, diff, untracked files), on the
  script's own path in a tree before the capture thread (``--baseline``);
- package capture: ``capture_packages`` (project files, import scan, installed dists),
  likewise;
- store writes: the task row (``create_running``), reuse lookup and remembering it;
- run start: the reporter thread, the console tee, the exit and argparse hooks;
- hooks: the rest of ``Task.init`` (framework hooks, the resource monitor);
- scalar: one ``report_scalar``;
- end: the exit hooks (last flush, finish), less the capture wait;
- capture wait: how long the script's end (or anything else) waited for the capture
  thread (``CodeCapture.wait``), on the script's path;
- capture thread: the capture in its own thread (its imports, git, the package scan,
  the write), wall and that thread's own CPU (``time.thread_time``), beside the script's
  path and so not in the sum;
- rest: interpreter start and shutdown, the script's own code: the wall time of the
  whole process less the phases on the script's path;
- process cpu: user + system CPU of the whole process (``getrusage`` of the child).

Each phase prints wall and CPU milliseconds (CPU: ``time.process_time``, every thread of
the process; it moves less with the machine's load than wall time does), median over
``--runs`` runs, beside a bare script's whole wall time (no clearq) measured in the same
runs, interleaved. Baseline in the same run: the same harness on an older clearq,
``git archive``'d from this repository (``--baseline``, default main before the capture
thread), interleaved with the tree's own runs.

    python benchmarks/task_init_phases.py [--runs 7] [--baseline REF]

Run it three times and give min / median / max of the three medians, with the load.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import baseline_tree
from task_init_overhead import make_repo

HARNESS = r"""
import atexit, json, runpy, sys, time
wall, cpu = time.perf_counter, time.process_time
phases = {}
out = sys.argv[2]
def add(name, w, c):
    old = phases.get(name, (0.0, 0.0))
    phases[name] = (old[0] + w, old[1] + c)
start = (wall(), cpu())
def at_end():
    waited = phases.get("capture wait", (0.0, 0.0))
    add("end", wall() - ended[0] - waited[0], cpu() - ended[1] - waited[1])
    with open(out, "w") as f:
        json.dump(phases, f)
atexit.register(at_end)  # before clearq's hooks: it runs after them
from clearq import Task
import clearq.sdk.init as init
from clearq.scheduler.runlink import RunLink
add("imports", wall() - start[0], cpu() - start[1])
def timed(name, fn):
    def wrapper(*a, **k):
        w, c = wall(), cpu()
        try:
            return fn(*a, **k)
        finally:
            add(name, wall() - w, cpu() - c)
    return wrapper
BESIDE = ("capture thread",)  # not on the script's path: left out of the sums
init.open_run_link = timed("store link", init.open_run_link)
if hasattr(init, "capture_script"):  # a tree that captures on the script's path
    init.capture_script = timed("git capture", init.capture_script)
    init.capture_packages = timed("package capture", init.capture_packages)
else:
    from clearq.sdk import code_capture
    def in_thread(capture):
        def wrapper():
            w, c = wall(), time.thread_time()
            try:
                return capture()
            finally:
                add("capture thread", wall() - w, time.thread_time() - c)
        return wrapper
    made = code_capture.CodeCapture.__init__
    code_capture.CodeCapture.__init__ = lambda self, capture: made(self, in_thread(capture))
    code_capture.CodeCapture.wait = timed("capture wait", code_capture.CodeCapture.wait)
init._take_over = timed("store writes", init._take_over)
init._remember = timed("store writes", init._remember)
RunLink.create_running = timed("store writes", RunLink.create_running)
attach = init.attach_or_capture
def attach_timed(*a, **k):
    before = dict(phases)
    w, c = wall(), cpu()
    try:
        return attach(*a, **k)
    finally:
        inner = [n for n in phases if n != "imports" and n not in BESIDE]
        spent_w = sum(phases[n][0] - before.get(n, (0, 0))[0] for n in inner)
        spent_c = sum(phases[n][1] - before.get(n, (0, 0))[1] for n in inner)
        add("run start", wall() - w - spent_w, cpu() - c - spent_c)
init.attach_or_capture = attach_timed
task_init = Task.init.__func__
def init_timed(cls, *a, **k):
    before = dict(phases)
    w, c = wall(), cpu()
    try:
        return task_init(cls, *a, **k)
    finally:
        inner = [n for n in phases if n != "imports" and n not in BESIDE]
        spent_w = sum(phases[n][0] - before.get(n, (0, 0))[0] for n in inner)
        spent_c = sum(phases[n][1] - before.get(n, (0, 0))[1] for n in inner)
        add("hooks", wall() - w - spent_w, cpu() - c - spent_c)
Task.init = classmethod(init_timed)
from clearq.sdk.logger import Logger
Logger.report_scalar = timed("scalar", Logger.report_scalar)
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
ended = (wall(), cpu())
"""
REPO = Path(__file__).resolve().parents[1]
BASELINE = "2ed0ad1"
"""main before the capture thread, the two-round git capture and the run path without
dataclasses (``81b9c4d``: before git capture took five commands and the run's records
stopped generating code; ``3c5271a``: before the lazy packaging, importlib.metadata and
psutil)."""
PHASES = (
    "imports",
    "store link",
    "git capture",
    "package capture",
    "store writes",
    "run start",
    "hooks",
    "scalar",
    "end",
    "capture wait",
)
"""On the script's path, in order: their sum and the rest make the whole process."""
SHOWN = (*PHASES, "capture thread")


def run_bare(work: Path, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "run_bare.py"], cwd=work, env=env, check=True, stdout=-3)
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
    return time.perf_counter() - start, cpu


def run_phased(
    work: Path, env: dict[str, str], out: Path, tree: Path
) -> dict[str, tuple[float, float]]:
    start = time.perf_counter()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, "run_clearq.py", str(out)],
        cwd=work,
        # A store of each tree's own: the trees may differ in schema revision.
        env={**env, "PYTHONPATH": str(tree), "CLEARQ_HOME": str(out.parent / f"home-{tree.name}")},
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the harness failed:\n{done.stderr}")
    phases = {k: tuple(v) for k, v in json.loads(out.read_text()).items()}
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
    phases["whole"] = (whole, cpu)
    return phases  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline clearq")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    trees = {"now": REPO, "baseline": baseline_tree(args.baseline, prefix="init-baseline-")}
    for tree in trees.values():
        # Both byte-compiled, whatever PYTHONDONTWRITEBYTECODE says: an archived tree
        # would otherwise compile every module on every run.
        compileall.compile_dir(tree / "clearq", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = make_repo(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        env.update(CLEARQ_HOME=str(root / "home"))
        for tree in trees.values():
            run_phased(work, env, root / "warm.json", tree)  # compiled, schema made
        bare: list[float] = []
        runs: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            bare.append(run_bare(work, env))
            for name, tree in trees.items():
                runs[name].append(run_phased(work, env, root / "phases.json", tree))
    report(bare, runs)
    print("load:", os.getloadavg())


def report(
    bare: list[tuple[float, float]], runs: dict[str, list[dict[str, tuple[float, float]]]]
) -> None:
    """Medians per phase and tree, the rest, and what clearq adds to the bare script."""

    def median(name: str, tree: str, i: int) -> float:
        return statistics.median(r.get(name, (0.0, 0.0))[i] for r in runs[tree]) * 1000

    def rest(r: dict[str, tuple[float, float]]) -> float:
        return r["whole"][0] - sum(r.get(n, (0.0, 0.0))[0] for n in PHASES)

    trees = list(runs)
    print(f"Task.init by hand, median of {len(bare)} runs (ms): wall / cpu")
    print(f"{'phase':<16}" + "".join(f"{t:>20}" for t in trees))
    for name in SHOWN:
        cells = [f"{median(name, t, 0):>10.1f}{median(name, t, 1):>10.1f}" for t in trees]
        print(f"{name:<16}" + "".join(cells))
    cells = [f"{statistics.median(rest(r) for r in runs[t]) * 1000:>10.1f}{'':>10}" for t in trees]
    print(f"{'rest':<16}" + "".join(cells))
    print(
        f"{'whole process':<16}"
        + "".join(f"{median('whole', t, 0):>10.1f}{median('whole', t, 1):>10.1f}" for t in trees)
    )
    bare_wall = statistics.median(b[0] for b in bare) * 1000
    bare_cpu = statistics.median(b[1] for b in bare) * 1000
    print(f"{'bare script':<16}{bare_wall:>10.1f}{bare_cpu:>10.1f}")
    for t in trees:
        wall_added = median("whole", t, 0) - bare_wall
        cpu_added = median("whole", t, 1) - bare_cpu
        print(
            f"{t}: clearq adds {wall_added:.0f} ms wall, {cpu_added:.0f} ms cpu (target < 150 ms)"
        )


if __name__ == "__main__":
    main()
