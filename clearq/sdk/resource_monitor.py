"""``Task.init(auto_resource_monitoring=True)``: the machine's load as the task's scalars.

As ClearML does, a run reports, every ``MONITOR_SECONDS``, the CPU use, the memory in
use and free, and its own process tree's memory, under the title ``:monitor:machine``
with the seconds since the run started as the iteration; a run shorter than that
reports nothing. (The agent keeps its own,
per-machine series of the same figures and the GPUs' in ``worker_metrics``.)

psutil is imported, and the CPU measure started, by the monitor's own thread once the run
has lasted ``WARMUP_SECONDS``: importing psutil would otherwise add to every
``Task.init``, and a run that short reports nothing anyway.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clearq.scheduler.runlink import Point


class _Sink(Protocol):
    def scalar(self, point: Point) -> None: ...


MONITOR_SECONDS = 30.0
WARMUP_SECONDS = 1.0
"""How long a run lasts before its monitor starts measuring (and imports psutil)."""
MONITOR_TITLE = ":monitor:machine"
_GIB = 1024**3


class ResourceMonitor:
    """A daemon thread reporting the machine's load into one run."""

    def __init__(self, reporter: _Sink, *, interval: float = MONITOR_SECONDS) -> None:
        self._reporter = reporter
        self._interval = interval
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._process: Any = None
        self._thread = threading.Thread(target=self._loop, name="clearq-monitor", daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        """The figures now: cpu_usage (%), memory_used_gb, memory_free_gb, process_memory_gb."""
        import psutil

        if self._process is None:
            self._begin()
        memory = psutil.virtual_memory()
        process = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                process += child.memory_info().rss
            except psutil.Error:
                continue  # it ended meanwhile
        return {
            "cpu_usage": psutil.cpu_percent(None),
            "memory_used_gb": (memory.total - memory.available) / _GIB,
            "memory_free_gb": memory.available / _GIB,
            "process_memory_gb": process / _GIB,
        }

    def report(self) -> None:
        """Report one sample now."""
        second = int(time.monotonic() - self._started)
        for series, value in self.sample().items():
            self._reporter.scalar((MONITOR_TITLE, series, second, float(value)))

    def stop(self) -> None:
        """Stop reporting."""
        self._stop.set()

    def _begin(self) -> None:
        import psutil

        self._process = psutil.Process()
        psutil.cpu_percent(None)  # the first reading only starts the measure

    def _loop(self) -> None:
        warmup = min(WARMUP_SECONDS, self._interval)
        if self._stop.wait(warmup):
            return
        self._begin()
        if self._stop.wait(self._interval - warmup):
            return
        self.report()
        while not self._stop.wait(self._interval):
            self.report()


__all__ = ["MONITOR_SECONDS", "MONITOR_TITLE", "WARMUP_SECONDS", "ResourceMonitor"]
