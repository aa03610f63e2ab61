"""Slurm's commands (``sbatch``, ``squeue``, ``scancel``) as one small adapter.

Every command is an argument list, never a shell string; Slurm's own error text is kept
in the :class:`SlurmError` that a failed command raises.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clearq.errors import ClearqError

COMMAND_TIMEOUT_SECONDS = 60.0

ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)
"""States of a job that is not over (squeue's long names)."""
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED"})
"""States of a job whose allocation is held (its command runs or is being ended)."""


class SlurmError(ClearqError):
    """A Slurm command failed or could not be run; the message keeps Slurm's words."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as ``squeue`` shows it."""

    job_id: str
    name: str
    state: str
    reason: str

    @property
    def active(self) -> bool:
        """True while the job is not over."""
        return self.state in ACTIVE_STATES

    @property
    def running(self) -> bool:
        """True while the job holds its allocation."""
        return self.state in RUNNING_STATES


class Slurm:
    """This machine's Slurm client commands."""

    def __init__(self, *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout

    def submit(
        self,
        script: Path,
        arguments: Sequence[str],
        *,
        name: str,
        output: str,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> str:
        """``sbatch`` ``script`` with ``arguments``; the new job's id.

        ``env``: the submission's environment, which Slurm hands to the job (the
        database URL travels this way, never in an argument list).
        """
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--output={output}", *options]
        out = self._run([*argv, str(script), *arguments], env=env)
        job_id = out.strip().split(";", 1)[0]  # --parsable: "id" or "id;cluster"
        if not job_id.isdigit():
            raise SlurmError(f"sbatch printed {out.strip()!r}, not a job id")
        return job_id

    def jobs(self) -> list[SlurmJob]:
        """This user's jobs, over and not (as long as Slurm keeps them: MinJobAge)."""
        out = self._run(["squeue", "--me", "--noheader", "--states=all", "--format=%i|%j|%T|%r"])
        found = []
        for line in out.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4:
                found.append(SlurmJob(*parts))
        return found

    def cancel(self, job_id: str) -> None:
        """``scancel`` a job (SIGTERM to its processes, SIGKILL after Slurm's KillWait)."""
        self._run(["scancel", job_id])

    def _run(self, argv: list[str], env: Mapping[str, str] | None = None) -> str:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
                env=dict(env) if env is not None else None,
            )
        except FileNotFoundError as e:
            raise SlurmError(
                f"{argv[0]} is not installed here: install Slurm's client commands "
                "(Debian: slurm-client) or run `clearq slurm` on a Slurm login node"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise SlurmError(f"{argv[0]} did not answer within {self._timeout:g} s") from e
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
            raise SlurmError(f"{argv[0]} failed: {words}")
        return done.stdout
