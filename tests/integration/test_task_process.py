"""A task's process: output streamed as written, stopped with its whole process group,
ended by its watchdog when its agent stops renewing it or dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from clearq.runtime.process import ProcessStartError, TaskProcess, describe_exit

WAIT_SECONDS = 60.0
WITH_A_GRANDCHILD = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}')\n"
    "time.sleep(600)\n"
)


class Collected:
    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: str, text: str) -> None:
        with self.lock:
            self.pieces.append((stream, text))

    def text(self, stream: str) -> str:
        with self.lock:
            return "".join(t for s, t in self.pieces if s == stream)


def test_output_streams_while_the_process_runs(tmp_path: Path) -> None:
    out = Collected()
    code = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=out)
    deadline = time.monotonic() + 10
    while "first" not in out.text("stdout") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.text("stdout") == "first\n"  # seen before the process ended
    assert proc.poll() is None
    assert proc.stop(grace=5) == -15
    assert out.text("stderr") == "to stderr\n"


def test_stop_takes_the_whole_process_group_and_kills_what_ignores_sigterm(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(60)\n"
    )
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=Collected())
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    started = time.monotonic()
    assert proc.stop(grace=0.5) == -9
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the task's own child outlived the stop"


def test_a_character_split_across_reads_stays_whole(tmp_path: Path) -> None:
    out = Collected()
    code = "import sys; sys.stdout.buffer.write('é'.encode() * 100_000)"
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=out)
    assert proc.wait() == 0
    assert out.text("stdout") == "é" * 100_000


def test_exits_are_described_for_people() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "killed by SIGKILL"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_machine_metrics_without_a_gpu_library_have_no_gpu_fields_and_no_error(
    tmp_path: Path,
) -> None:
    from clearq.runtime.gpu_metrics import GpuReader
    from clearq.runtime.monitor import MachineMonitor

    monitor = MachineMonitor(disk_path=tmp_path)
    first = monitor.sample()
    time.sleep(0.2)
    second = monitor.sample()
    monitor.close()
    assert first.disk_read_bps is None  # a rate needs two samples
    assert second.disk_read_bps is not None
    assert second.memory_total is not None
    assert second.memory_used is not None
    assert 0 < second.memory_used <= second.memory_total
    assert second.disk_free is not None
    assert len(second.gpus) == GpuReader.device_count()  # none on a machine without NVML


def _pids(path: Path) -> list[int]:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (path.exists() and path.read_text().count(" ") == 1):
        assert time.monotonic() < deadline, "the task never started its child"
        time.sleep(0.05)
    return [int(pid) for pid in path.read_text().split()]


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_hold_time_passed_unrenewed_kills_the_task_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    argv = [sys.executable, "-c", WITH_A_GRANDCHILD, str(pids)]
    proc = TaskProcess(argv, cwd=tmp_path, env=os.environ, sink=Collected())
    task, grandchild = _pids(pids)
    proc.hold(time.monotonic() + 0.5)  # then the agent goes quiet, as a frozen one does
    assert _gone([task, grandchild]), "the watchdog left the task running"
    assert proc.wait(timeout=WAIT_SECONDS) == -9
    assert proc.gave_up


def test_renewals_keep_the_task_running_to_its_own_end(tmp_path: Path) -> None:
    code = "import time; time.sleep(2); print('done', flush=True)"
    out = Collected()
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=out)
    while proc.poll() is None:
        proc.hold(time.monotonic() + 1.0)
        time.sleep(0.1)
    assert proc.wait() == 0
    assert out.text("stdout") == "done\n"
    assert not proc.gave_up


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("import sys; sys.exit(3)", 3),
        ("raise SystemExit('message')", 1),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", -signal.SIGSEGV),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
    ],
)
def test_the_exit_status_is_the_tasks_own(tmp_path: Path, code: str, status: int) -> None:
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=Collected())
    assert proc.wait(timeout=WAIT_SECONDS) == status
    assert not proc.gave_up


def test_a_task_that_handles_sigterm_ends_as_it_chooses(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    proc = TaskProcess([sys.executable, "-c", code], cwd=tmp_path, env=os.environ, sink=Collected())
    deadline = time.monotonic() + WAIT_SECONDS
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.stop(grace=WAIT_SECONDS) == 0  # its abort path ran: the watchdog outlived it


def test_a_missing_program_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ProcessStartError, match="no-such-program"):
        TaskProcess(["no-such-program"], cwd=tmp_path, env=os.environ, sink=Collected())


def test_the_task_and_its_children_die_with_a_killed_agent(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    agent = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from clearq.runtime.process import TaskProcess
        argv = [sys.executable, "-c", {WITH_A_GRANDCHILD!r}, {str(pids)!r}]
        proc = TaskProcess(argv, cwd=Path({str(tmp_path)!r}), env=os.environ,
                           sink=lambda stream, text: None)
        proc.wait()
        """
    )
    killed = subprocess.Popen([sys.executable, "-c", agent])
    try:
        task, grandchild = _pids(pids)
    finally:
        killed.kill()
        killed.wait()
    assert _gone([task, grandchild]), "the task or its child outlived its agent"


def _child_of(parent: int, name: str) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for child in psutil.Process(parent).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.name() == name or name in " ".join(child.cmdline()):
                    return child.pid
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("runs", "child"),
    [
        (
            "from clearq.runtime.workspace_git import git\n"
            "from clearq.runtime.workspace_paths import WorkspaceStep\n"
            "git(WorkspaceStep.CLONE, None, '-c', 'alias.hang=!sleep 600', 'hang')\n",
            "git",
        ),
        (
            "import sys\n"
            "from clearq.envs.process import run_installer\n"
            "from clearq.envs.progress import NullProgress\n"
            "argv = [sys.executable, '-c', 'import time; time.sleep(600)', 'installer']\n"
            "run_installer(argv, manager='pip', step='install', progress=NullProgress())\n",
            "installer",
        ),
    ],
    ids=["git", "installer"],
)
def test_the_agents_own_git_and_installers_die_with_it(runs: str, child: str) -> None:
    agent = subprocess.Popen([sys.executable, "-c", runs])
    try:
        pid = _child_of(agent.pid, child)
    finally:
        agent.kill()
        agent.wait()
    assert _gone([pid]), f"{child} outlived its SIGKILLed agent"
