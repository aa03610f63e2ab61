"""Runs inside a container: a venv's build, or a task's packages, setup script and run.

The runner (``clearq.envs.docker``) mounts this file read-only at ``/clearq/bootstrap.py``
and starts the container with ``python3 -I /clearq/bootstrap.py PLAN``, so it runs with
the image's own Python and the standard library only. It reads the plan (JSON, written
by the runner). A build plan (``"build"`` names the venv's folder; the container that
runs it sees the env cache read-only and only that folder writable) does:

1. ``apt-get update`` and ``apt-get install -y`` the system packages, as argv;
2. ``python3 -m venv`` in the build folder and ``pip install -r`` the requirements
   file, then writes the ready marker. The agent publishes it in the cache on the host
   (``clearq.envs.docker_envbuild``).

A task plan does, in a container that sees the env cache read-only:

1. the system packages, as above;
2. the task's setup script, run as a file (``bash FILE``, or ``sh FILE`` without bash);
3. the task's command, in its own process group, with the plan's ``venv`` (if any) first
   on ``PATH``; SIGTERM and SIGINT are passed on to that group. The exit code is the task's.

Nothing else from the plan is executed: requirements go to pip as a requirements file,
package names as arguments. A step that fails exits with its own code (see ``EXIT_*``),
after a line on stderr that starts with ``clearq-docker:``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

EXIT_PLAN = 249
"""The plan could not be read."""
EXIT_SYSTEM_PACKAGES = 250
"""``apt-get`` failed or is missing."""
EXIT_SETUP_SCRIPT = 251
"""The task's setup script exited non-zero."""
EXIT_ENVIRONMENT = 252
"""The venv could not be built (no ``venv`` module, a requirement pip could not install)."""
EXIT_COMMAND = 253
"""The task's command could not be started (not found, not executable)."""

CLEARQ_PYTHON = (3, 11)
"""The oldest Python the agent's clearq (put on PYTHONPATH) imports on."""
READY_MARKER = ".clearq-ready"
"""Written into a venv as the last step of its build."""


def say(message: str) -> None:
    """A line of the bootstrap's own on stderr, where the agent's log shows it."""
    print(f"clearq-docker: {message}", file=sys.stderr, flush=True)


class StepFailed(Exception):
    """A step failed; ``code`` is the exit code that says which."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def install_system_packages(packages: list[str]) -> None:
    """``apt-get install`` the (already checked) package names."""
    if not packages:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise StepFailed(EXIT_SYSTEM_PACKAGES, "system packages need apt-get; the image has none")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing system packages: {' '.join(packages)}")
    for argv in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", *packages]):
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise StepFailed(EXIT_SYSTEM_PACKAGES, f"{' '.join(argv[:2])} failed (see above)")


def run_setup_script(script: str | None, cwd: str) -> None:
    """Run the task's setup script file with bash (or sh)."""
    if not script:
        return
    shell = shutil.which("bash") or shutil.which("sh") or "sh"
    say("running the setup script")
    code = subprocess.run([shell, script], cwd=cwd, check=False).returncode
    if code != 0:
        raise StepFailed(EXIT_SETUP_SCRIPT, f"the setup script exited with code {code}")


def build_venv(build: Path, plan: dict[str, Any]) -> None:
    """A venv in ``build`` (an empty folder) with the plan's requirements, marked ready."""
    argv = [sys.executable, "-m", "venv"]
    if plan.get("system_site_packages"):
        argv.append("--system-site-packages")
    say(f"building environment {plan['key']}")
    if subprocess.run([*argv, str(build)], check=False).returncode != 0:
        raise StepFailed(
            EXIT_ENVIRONMENT,
            "python3 -m venv failed: the image needs the venv module (python3-venv)",
        )
    python = str(build / "bin" / "python")
    for requirements in plan.get("requirement_files", []):
        pip = [python, "-m", "pip", "install", "--no-input", *plan.get("index_args", [])]
        if subprocess.run([*pip, "-r", requirements], check=False).returncode != 0:
            raise StepFailed(EXIT_ENVIRONMENT, "pip could not install the requirements (see above)")
    (build / READY_MARKER).write_text(str(plan["key"]))


def run_command(plan: dict[str, Any]) -> int:
    """Run the task's command in its own process group; return its exit code."""
    venv = Path(plan["venv"]) if plan.get("venv") else None
    env = dict(os.environ)
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        env["VIRTUAL_ENV"] = str(venv)
    paths = [*plan.get("pythonpath", []), *filter(None, [env.get("PYTHONPATH")])]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        child = subprocess.Popen(
            plan["command"], cwd=plan["working_dir"], env=env, start_new_session=True
        )
    except OSError as e:
        raise StepFailed(EXIT_COMMAND, f"cannot start {plan['command'][0]!r}: {e}") from e

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    """Carry out the plan at ``argv[1]``; return the exit code for the container."""
    try:
        plan = json.loads(Path(argv[1]).read_text())
    except (IndexError, OSError, ValueError) as e:
        say(f"cannot read the plan: {e}")
        return EXIT_PLAN
    try:
        install_system_packages(list(plan.get("system_packages", [])))
        if plan.get("build"):
            build_venv(Path(plan["build"]), plan)
            return 0
        run_setup_script(plan.get("setup_script"), plan["working_dir"])
        if plan.get("with_clearq") and sys.version_info < CLEARQ_PYTHON:
            say(f"warning: clearq needs Python 3.11 or later and this image has {sys.version}")
        return run_command(plan)
    except StepFailed as e:
        say(str(e))
        return e.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
