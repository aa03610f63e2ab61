"""Running a queued step on this machine, now: ``clearq task run ID`` with this Python.

For pipelines whose steps run where their logic runs (ClearML's ``run_locally`` and
``start_locally(run_pipeline_steps_locally=True)``): the step is claimed out of its
queue with the agents' fenced claim, runs in a process of its own, and reports as it
would on an agent. The step's queue must exist; an agent serving it may take the step
first, and then this run says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from clearq import Task

LOCAL_RUN_TIMEOUT_SECONDS = 3600
_TASK_FAILED = 3
"""``clearq task run``'s exit code when the task ran and failed (its status says so)."""


def run_here(task: Task) -> None:
    """Run ``task`` (queued) to its end here; RuntimeError if it could not be run."""
    clearq = shutil.which("clearq")
    command = [clearq] if clearq else [sys.executable, "-c", "from clearq.cli import main; main()"]
    done = subprocess.run(
        [*command, "task", "run", task.id, "--skip-env"],
        capture_output=True,
        text=True,
        timeout=LOCAL_RUN_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode not in (0, _TASK_FAILED):
        raise RuntimeError(f"running step {task.name!r} here failed: {done.stderr.strip()}")


__all__ = ["LOCAL_RUN_TIMEOUT_SECONDS", "run_here"]
