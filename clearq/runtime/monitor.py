"""What an agent's machine and its tasks are doing: CPU, memory, disk, network, GPUs.

``MachineMonitor.sample()`` returns a WorkerMetrics: rates (disk and network bytes per
second, CPU percent) are over the time since the previous sample, so the first sample
has none of them. ``ProcessTreeMonitor`` follows one task's process and its children.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from clearq.models import WorkerMetrics
from clearq.runtime.gpu_metrics import GpuReader


class MachineMonitor:
    """Samples this machine's figures; GPUs only those given (all when None)."""

    def __init__(self, *, disk_path: Path, gpus: Sequence[int] | None = None) -> None:
        self._disk_path = disk_path
        self._gpus = GpuReader.open(gpus) if gpus is None or gpus else None
        self._last: tuple[float, int, int, int, int] | None = None
        psutil.cpu_percent(interval=None)  # primes the CPU counter: next call is a rate

    def sample(self) -> WorkerMetrics:
        """The machine now."""
        now = time.monotonic()
        memory = psutil.virtual_memory()
        counters = self._counters()
        rates: dict[str, float] = {}
        if self._last is not None and now > self._last[0]:
            span = now - self._last[0]
            names = ("disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")
            for name, new, old in zip(names, counters, self._last[1:], strict=True):
                rates[name] = max(new - old, 0) / span
        self._last = (now, *counters)
        return WorkerMetrics(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used=memory.total - memory.available,
            memory_total=memory.total,
            disk_free=self._disk_free(),
            gpus=self._gpus.read() if self._gpus is not None else (),
            **rates,
        )

    def close(self) -> None:
        """Release the GPU library."""
        if self._gpus is not None:
            self._gpus.close()

    def _disk_free(self) -> int | None:
        try:
            return psutil.disk_usage(str(self._disk_path)).free
        except OSError:
            return None

    @staticmethod
    def _counters() -> tuple[int, int, int, int]:
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        return (
            disk.read_bytes if disk else 0,
            disk.write_bytes if disk else 0,
            net.bytes_recv if net else 0,
            net.bytes_sent if net else 0,
        )


class ProcessTreeMonitor:
    """CPU percent and resident memory of one process and all its children.

    With ``root`` False the process itself is left out (a watchdog over the task).
    """

    def __init__(self, pid: int, *, root: bool = True) -> None:
        self._root = psutil.Process(pid)
        self._with_root = root
        self._known: dict[int, psutil.Process] = {}

    def sample(self) -> tuple[float, int] | None:
        """(CPU percent summed over the tree, bytes resident); None once the root is
        gone, or while the tree has nothing to measure yet."""
        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        if not self._with_root:
            tree = tree[1:]
            if not tree:
                return None
        cpu, rss = 0.0, 0
        alive: dict[int, psutil.Process] = {}
        for proc in tree:
            # Keep each Process object: cpu_percent is a rate since its previous call.
            known = self._known.get(proc.pid, proc)
            try:
                cpu += known.cpu_percent(interval=None)
                rss += known.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            alive[proc.pid] = known
        self._known = alive
        return cpu, rss
