"""CPU seconds of one ``clearq`` command, this tree against a baseline tree, on SQLite.

The test suite runs the real command as a subprocess hundreds of times (tests/acceptance's
``Cli.run``), and every agent and task process pays the same start; on a 2-core machine
that CPU is most of the suite's. Each command below is run as the console script runs it
(``python -c "from clearq.cli import main; main()" ARGS``) with ``PYTHONPATH`` set to one
tree's ``clearq/``, and its CPU (user + system, from ``wait4``) is read per run. The runs
of the two trees are interleaved, so load moves both alike; ``python -c pass`` is the
floor of any Python process here.

    python benchmarks/cli_startup.py [--runs 5] [--baseline REF] [--postgres] [--no-compile]

The baseline is ``clearq/`` ``git archive``'d at REF (default: the commit before the CLI
was made lazy). Each tree gets its own SQLite file and home, upgraded and given a queue
and a task first, so the listing commands have rows to print. Both trees are
byte-compiled first (``compileall``): this machine sets ``PYTHONDONTWRITEBYTECODE=1``, so
a tree without ``__pycache__`` compiles every module it imports on every run
(``--no-compile`` measures that case).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from common import REPO, URL_ENV, baseline_tree, bench_database, table

BASELINE = "625e69f"
"""The last commit before the CLI imported the store, runtime, envs and rich lazily."""

MAIN = "from clearq.cli import main; main()"

COMMANDS: dict[str, Sequence[str]] = {
    "python -c pass": (),
    "clearq --help": ("--help",),
    "clearq task --help": ("task", "--help"),
    "clearq queue list --json": ("queue", "list", "--json"),
    "clearq queue create": ("queue", "create", "{unique}"),
    "clearq task list --json": ("task", "list", "--json"),
    "clearq task list": ("task", "list"),
    "clearq task show ID --json": ("task", "show", "{task}", "--json"),
    "clearq agent (idle exit)": ("agent", "--skip-env", "-q", "bench", "--idle-exit", "0"),
}


def cpu_of(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``argv`` to its end; its CPU seconds (it must succeed)."""
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read()!r}")
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime


class Tree:
    """One ``clearq/`` tree, with a database and home of its own."""

    def __init__(self, name: str, root: Path, scratch: Path, url: str | None) -> None:
        self.name = name
        home = scratch / name
        home.mkdir()
        # Run from the home: `python -c` puts the working folder first on sys.path.
        self.cwd = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        self.env.update(
            PYTHONPATH=str(root),
            CLEARQ_HOME=str(home),
            CLEARQ_DATABASE_URL=url or f"sqlite:///{home / 'clearq.db'}",
        )
        self.run("db", "upgrade")
        self.run("queue", "create", "bench")
        script = home / "train.py"
        script.write_text("print('hello')\n")
        made = self.out(
            "task",
            "create",
            "--project",
            "bench",
            "--name",
            "bench",
            "--json",
            "--script",
            str(script),
        )
        self.task = str(json.loads(made)["id"])

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-c", MAIN, *args]

    def run(self, *args: str) -> None:
        subprocess.run(self.argv(args), env=self.env, cwd=self.cwd, check=True, capture_output=True)

    def out(self, *args: str) -> str:
        done = subprocess.run(
            self.argv(args), env=self.env, cwd=self.cwd, check=True, capture_output=True, text=True
        )
        return done.stdout

    def cpu(self, label: str, args: Sequence[str]) -> float:
        if not args:
            return cpu_of([sys.executable, "-c", "pass"], self.env, self.cwd)
        filled = [a.format(unique=f"q{uuid.uuid4().hex[:8]}", task=self.task) for a in args]
        return cpu_of(self.argv(filled), self.env, self.cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline clearq")
    parser.add_argument("--no-compile", action="store_true", help="leave the trees uncompiled")
    parser.add_argument(
        "--postgres", action="store_true", help=f"on PostgreSQL (${URL_ENV}), not SQLite"
    )
    args = parser.parse_args()
    print("load before:", os.getloadavg())
    base = baseline_tree(args.baseline, prefix="cli-baseline-")
    if not args.no_compile:
        for root in (REPO, base):
            compileall.compile_dir(root / "clearq", quiet=1)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls = [stack.enter_context(bench_database("cli")) if args.postgres else None for _ in "ab"]
        trees = [Tree("now", REPO, scratch, urls[0]), Tree("baseline", base, scratch, urls[1])]
        for tree in trees:  # the first run of a tree writes its bytecode: not counted
            tree.cpu("--help", ("--help",))
        figures: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for label, command in COMMANDS.items():
                for tree in trees:
                    figures.setdefault((label, tree.name), []).append(tree.cpu(label, command))
    shutil.rmtree(base)
    rows = []
    for label in COMMANDS:
        now, base = figures[(label, "now")], figures[(label, "baseline")]
        rows.append(
            [
                label,
                *(f"{min(v):.2f}/{statistics.median(v):.2f}/{max(v):.2f}" for v in (now, base)),
                statistics.median(base) - statistics.median(now),
            ]
        )
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"CPU seconds per command on {where}, min/median/max of {args.runs} runs")
    print(f"(baseline {args.baseline}{', uncompiled' if args.no_compile else ''})")
    print(table(["command", "now", "baseline", "saved (median)"], rows))
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
