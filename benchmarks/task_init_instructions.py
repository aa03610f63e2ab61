"""What ``Task.init`` adds to a script, in instructions: a figure the machine's load moves
little, where wall and CPU time on a shared 2-core machine swing by a factor of two.

``task_init_overhead.py``'s sample repository and scripts (50 modules, a local bare origin,
one uncommitted edit, one untracked file, a fresh SQLite store) run under valgrind's
callgrind, ``--trace-children=yes``: the instructions of the Python process and of every
git command it starts, counted apart. Printed for a bare script (no clearq), the tree's
clearq and a baseline clearq ``git archive``'d from this repository (``--baseline``), both
byte-compiled first and each with a store of its own; the median of ``--runs`` runs each.

Instructions are not time: a git process costs more in the kernel (fork, exec, page
faults) than its own instructions say, which this count leaves out.

    python benchmarks/task_init_instructions.py [--runs 1] [--baseline REF]
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
from pathlib import Path

from task_init_overhead import make_repo
from task_init_phases import REPO, baseline_tree

BASELINE = "2ed0ad1"
"""main before the capture thread, the two-round git capture and the run path without
dataclasses (``81b9c4d``: before git capture took five commands)."""
_TOTAL = re.compile(rb"^(?:summary|totals): (\d+)", re.M)
_CMD = re.compile(rb"^cmd: (.*)$", re.M)


def counted(work: Path, env: dict[str, str], script: str, out: Path) -> tuple[int, int, int]:
    """Instructions of ``script``'s Python process, of its git children, and their count."""
    for old in out.glob("cg.*"):
        old.unlink()
    subprocess.run(
        [
            *("valgrind", "--tool=callgrind", "--trace-children=yes"),
            f"--callgrind-out-file={out}/cg.%p",
            *(sys.executable, script),
        ],
        cwd=work,
        env={**env, "PYTHONHASHSEED": "0"},
        check=True,
        capture_output=True,
    )
    python = git = children = 0
    for file in out.glob("cg.*"):
        data = file.read_bytes()
        total = _TOTAL.search(data)
        command = _CMD.search(data)
        if total is None or command is None:
            continue
        if command.group(1).split()[0].endswith(b"git"):
            git += int(total.group(1))
            children += 1
        else:
            python += int(total.group(1))
    return python, git, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline clearq")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    trees = {"now": REPO, "baseline": baseline_tree(args.baseline)}
    for tree in trees.values():
        compileall.compile_dir(tree / "clearq", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = make_repo(root)
        out = root / "callgrind"
        out.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        runs: dict[str, list[tuple[int, int, int]]] = {"bare": []}
        for name, tree in trees.items():
            tree_env = {**env, "PYTHONPATH": str(tree), "CLEARQ_HOME": str(root / name)}
            subprocess.run([sys.executable, "run_clearq.py"], cwd=work, env=tree_env, check=True)
            runs[name] = []
        for _ in range(args.runs):
            runs["bare"].append(counted(work, env, "run_bare.py", out))
            for name, tree in trees.items():
                tree_env = {**env, "PYTHONPATH": str(tree), "CLEARQ_HOME": str(root / name)}
                runs[name].append(counted(work, tree_env, "run_clearq.py", out))
    bare = statistics.median(r[0] for r in runs["bare"])
    print(f"instructions, median of {args.runs} run(s), millions")
    print(f"{'':<10}{'python':>10}{'git':>8}{'git runs':>10}{'added':>10}")
    for name, counts in runs.items():
        python = statistics.median(c[0] for c in counts)
        git = statistics.median(c[1] for c in counts)
        runs_of_git = statistics.median(c[2] for c in counts)
        added = (python + git - bare) / 1e6
        cells = f"{python / 1e6:>10.1f}{git / 1e6:>8.1f}{runs_of_git:>10.0f}{added:>10.1f}"
        print(f"{name:<10}{cells}")
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
