"""The fault table: per fault, lost / duplicated / stale / stuck / orphans and recovery time.

Runs the fault suite (``tests/faults``: real agents, a throwaway PostgreSQL cluster,
real signals) ``--runs`` times, each fault's history checked by one checker
(``tests/faults/history.py``), and prints one line per fault: the counts summed over
the runs and the recovery time's min / median / max in seconds, beside the machine's
load. The counts are the result (they must be 0, except duplicated and overlaps, which
at-least-once execution allows; a frozen agent's attempt must show neither: its watchdog
ends it, children included, at the agent's give-up time); orphans count the tasks'
processes, their children and the agents; the recovery time is the figure.

    python benchmarks/fault_table.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COUNTS = ("lost", "duplicated", "stale", "stuck", "orphans", "overlaps", "requeues")


def run_suite(report: Path) -> int:
    """One run of the fault suite, verdicts appended to ``report``; pytest's exit status."""
    env = {**os.environ, "CLEARQ_FAULT_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def table(rows: list[dict[str, Any]]) -> str:
    """Counts summed per fault; recovery min / median / max."""
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_fault[row["fault"]].append(row)
    header = ("fault", "runs", *COUNTS, "recovery s min/med/max")
    lines = [header]
    for fault, runs in by_fault.items():
        times = [r["recovery_s"] for r in runs if r["recovery_s"] is not None]
        spread = (
            f"{min(times):.1f} / {statistics.median(times):.1f} / {max(times):.1f}"
            if times
            else "-"
        )
        counts = [str(sum(r[c] for r in runs)) for c in COUNTS]
        lines.append((fault, str(len(runs)), *counts, spread))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "faults.jsonl"
        statuses = []
        for i in range(args.runs):
            print(f"run {i + 1} of {args.runs}; load: {os.getloadavg()}", flush=True)
            statuses.append(run_suite(report))
        rows = [json.loads(line) for line in report.read_text().splitlines()]
    print()
    print(table(rows))
    print(f"\nload average at the end: {os.getloadavg()}; pytest exit statuses: {statuses}")
    if any(statuses):
        sys.exit(1)


if __name__ == "__main__":
    main()
