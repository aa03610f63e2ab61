"""A task's process: output streamed as written, stopped with its whole process group."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from clearq.runtime.process import TaskProcess, describe_exit


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
