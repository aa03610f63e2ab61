"""Task.init's resource monitoring: the machine's load reported as the run's scalars."""

from __future__ import annotations

import threading

from clearq.scheduler.runlink import Point
from clearq.sdk.resource_monitor import MONITOR_TITLE, ResourceMonitor


class Sink:
    def __init__(self) -> None:
        self.points: list[Point] = []
        self.got = threading.Event()

    def scalar(self, point: Point) -> None:
        self.points.append(point)
        if len(self.points) >= 8:
            self.got.set()


def test_samples_are_reported_every_interval_until_stopped() -> None:
    sink = Sink()
    monitor = ResourceMonitor(sink, interval=0.01)
    assert sink.got.wait(timeout=60)
    monitor.stop()
    series = {series for title, series, _, _ in sink.points if title == MONITOR_TITLE}
    assert series == {"cpu_usage", "memory_used_gb", "memory_free_gb", "process_memory_gb"}
    assert all(value >= 0 for _, _, _, value in sink.points)
    assert all(title == MONITOR_TITLE for title, _, _, _ in sink.points)


def test_a_short_run_reports_nothing() -> None:
    sink = Sink()
    monitor = ResourceMonitor(sink, interval=3600)
    monitor.stop()
    assert sink.points == []
