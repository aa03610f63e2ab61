"""A real single-machine Slurm for the tests of ``clearq slurm`` (never a fake sbatch).

Where ``sinfo`` does not answer, the tests start one with ``.ci/slurm-up`` (Debian's
slurm-wlm and munge; as root only, since it writes ``/etc/slurm``). Where that cannot be
done the Slurm tests skip with the reason; with ``CLEARQ_REQUIRE_SLURM=1`` (CI sets it)
they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REQUIRE_SLURM = os.environ.get("CLEARQ_REQUIRE_SLURM", "") not in ("", "0", "false")
SLURM_UP = Path(__file__).resolve().parent.parent / ".ci" / "slurm-up"
START_TIMEOUT = 180


def unavailable(reason: str) -> None:
    """Skip, or fail where Slurm is required."""
    if REQUIRE_SLURM:
        pytest.fail(f"Slurm is required (CLEARQ_REQUIRE_SLURM) but: {reason}")
    pytest.skip(f"no Slurm: {reason}")


def answering() -> bool:
    """True when this machine's Slurm has a node ready for jobs."""
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(
        ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and any(
        state.strip().rstrip("*") in ("idle", "mix", "alloc") for state in done.stdout.split()
    )


def ensure_slurm() -> None:
    """A Slurm that answers, started here if need be; skip or fail with the reason."""
    if answering():
        return
    if shutil.which("slurmctld") is None:
        unavailable("slurm-wlm is not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        unavailable("sinfo does not answer and only root can start Slurm (.ci/slurm-up)")
    done = subprocess.run(
        [str(SLURM_UP)], capture_output=True, text=True, timeout=START_TIMEOUT, check=False
    )
    if done.returncode != 0 or not answering():
        unavailable(f".ci/slurm-up could not start Slurm: {done.stderr.strip()[-2000:]}")


def cancel_jobs_named(prefix: str) -> None:
    """Cancel this user's jobs whose names start with ``prefix`` (a test's own)."""
    done = subprocess.run(
        ["squeue", "--me", "--noheader", "--format=%i %j"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = [
        line.split()[0] for line in done.stdout.splitlines() if line.split()[1].startswith(prefix)
    ]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def cancel_jobs_of(task_ids: list[str]) -> None:
    """Cancel the clearq jobs of these tasks (a test's own), whatever their state."""
    for task_id in task_ids:
        cancel_jobs_named(f"clearq-{task_id}")
