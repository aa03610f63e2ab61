"""What ``Task.init`` costs a training script: wall time, import and exit included.

A sample repository of ~50 Python files is made in a temporary folder (a local bare repo
as origin, one uncommitted edit, one untracked file). The same small script runs with
and without ``Task.init`` (and a few reported scalars), alternately, several times; the
medians are printed side by side with the difference and the ratio. The store is a fresh
SQLite file (the zero-setup default).

With ``--clearml-python PATH`` (an interpreter where the ``clearml`` package is
installed), the same script with ClearML's ``Task.init`` in offline mode runs in the same
session and its figures are printed beside clearq's.

Target: under 150 ms added, and no process left running beside the script once its exit
hooks have run (at its last line the capture's git commands may still be running).

clearq is byte-compiled first, as an installed package is: with
``PYTHONDONTWRITEBYTECODE=1`` (set on this machine) a module edited since its last
``.pyc`` would be compiled again on every run, a cost no user pays. The load average is
printed before and after: on a shared machine run it three times and give min / median
/ max of the three, with the load.

    python benchmarks/task_init_overhead.py [--runs 7] [--clearml-python PATH]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULES = 50

SCRIPT = """
import atexit, os, sys
def parent_of(pid):
    try:
        with open(f"/proc/{{pid}}/stat") as f:
            return f.read().split(") ")[-1].split()[1]
    except OSError:
        return None
def children():
    return [p for p in os.listdir("/proc") if p.isdigit() and parent_of(p) == str(os.getpid())]
atexit.register(lambda: print("left", len(children())))  # the last exit hook to run
{import_line}
from proj import mod_0, mod_1, mod_2
{init_line}
total = mod_0.work(3) + mod_1.work(3) + mod_2.work(3)
{report_line}
print("children", len(children()))
"""
"""Counts the script's child processes at its last line (clearq's capture may still be
running git then) and once every exit hook has run (what is left running beside it)."""

VARIANTS = {
    "bare": ("", "", ""),
    "clearq": (
        "from clearq import Task",
        'task = Task.init(project_name="bench", task_name="init")',
        'task.get_logger().report_scalar("loss", "train", total, 0)',
    ),
    "clearml": (
        "from clearml import Task",
        'task = Task.init(project_name="bench", task_name="init")',
        'task.get_logger().report_scalar("loss", "train", total, 0)',
    ),
}


def git(cwd: Path, *args: str) -> None:
    """Run git quietly, failing loudly."""
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    """A repository of MODULES small modules plus one script per variant."""
    origin, work = root / "origin.git", root / "work"
    git(root, "init", "-q", "--bare", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    package = work / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for i in range(MODULES):
        (package / f"mod_{i}.py").write_text(
            f"import json\n\n\ndef work(n):\n    return sum(range(n)) + {i}\n"
        )
    for name, (imp, init, report) in VARIANTS.items():
        text = SCRIPT.format(import_line=imp, init_line=init, report_line=report)
        (work / f"run_{name}.py").write_text(text)
    git(work, "add", ".")
    git(work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "sample")
    git(work, "push", "-q", "origin", "HEAD")
    (package / "mod_1.py").write_text("def work(n):\n    return n\n")  # an uncommitted edit
    (work / "notes.txt").write_text("untracked\n")
    return work


def run_once(python: str, work: Path, variant: str, env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, the script's child processes at its last line and after its exit
    hooks."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [python, f"run_{variant}.py"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed ({proc.returncode}):\n{err}")
    # ClearML prints its own lines after ours: read the script's count, not the last line.
    found = re.search(r"^children (\d+)$", out, re.MULTILINE)
    left = re.search(r"^left (\d+)$", out, re.MULTILINE)
    if found is None or left is None:
        raise SystemExit(f"{variant} printed no child count:\n{out}")
    return wall, int(found.group(1)), int(left.group(1))


def measure(
    python: str, work: Path, variant: str, env: dict[str, str], runs: int
) -> dict[str, float]:
    """Median wall time over ``runs`` runs, and the most child processes seen."""
    walls, children, left = [], 0, 0
    for _ in range(runs):
        wall, kids, kept = run_once(python, work, variant, env)
        walls.append(wall)
        children, left = max(children, kids), max(left, kept)
    return {"wall": statistics.median(walls), "children": children, "left": left}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--clearml-python", help="an interpreter with clearml installed")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "clearq", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = make_repo(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        env.update(CLEARQ_HOME=str(root / "home"), CLEARML_OFFLINE_MODE="1")
        results = {
            "bare": measure(sys.executable, work, "bare", env, args.runs),
            "clearq": measure(sys.executable, work, "clearq", env, args.runs),
        }
        if args.clearml_python:
            results["clearml"] = measure(args.clearml_python, work, "clearml", env, args.runs)
    report(results, args.runs)
    print("load:", os.getloadavg())


def report(results: dict[str, dict[str, float]], runs: int) -> None:
    """Print the table and the verdict."""
    bare = results["bare"]["wall"]
    print(f"Task.init overhead, median of {runs} runs, {MODULES}-module sample repository")
    print("children: at the script's last line / left once its exit hooks have run")
    print(f"{'variant':<10}{'wall ms':>10}{'added ms':>10}{'ratio':>8}{'children':>12}")
    for name, r in results.items():
        added = (r["wall"] - bare) * 1000
        kids = f"{int(r['children'])} / {int(r['left'])}"
        print(
            f"{name:<10}{r['wall'] * 1000:>10.0f}{added:>10.0f}{r['wall'] / bare:>8.2f}{kids:>12}"
        )
    added = (results["clearq"]["wall"] - bare) * 1000
    verdict = "meets" if added < 150 and results["clearq"]["left"] == 0 else "MISSES"
    print(f"clearq adds {added:.0f} ms (target < 150 ms, no extra process): {verdict} the target")
    if "clearml" in results:
        ratio = results["clearml"]["wall"] / results["clearq"]["wall"]
        print(f"clearml / clearq wall time: {ratio:.1f}x")


if __name__ == "__main__":
    main()
