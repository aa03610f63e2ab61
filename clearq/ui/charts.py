"""Chart panels as JSON for the page's uPlot charts: x values and named series.

Every series here comes from a query already bounded by a time range and downsampled
by the database (``store.views``); this module only arranges the points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from clearq.models import GpuMetrics, MetricsSample, ScalarPoint, WorkerMetrics
from clearq.scheduler.views import ActivityPoint, QueuePoint

_GIB = 2**30
_MB = 1e6


@dataclass(frozen=True)
class Series:
    """One line of a chart; ``None`` where there is no value."""

    label: str
    values: list[float | None]


@dataclass(frozen=True)
class Panel:
    """One chart: x values (epoch seconds when ``time``) and its series."""

    id: str
    title: str
    x: list[float]
    series: list[Series]
    time: bool = True
    x_range: tuple[float, float] | None = None
    """The x axis's bounds (a time range), even where no point falls."""
    span_gaps: bool = False
    """Join points across empty buckets (a wait is only known where a task left)."""

    def as_json(self) -> dict[str, Any]:
        """The panel as JSON-ready values."""
        return asdict(self)


def _scaled(value: float | int | None, scale: float) -> float | None:
    return None if value is None else round(value / scale, 3)


def _field(
    samples: Sequence[MetricsSample],
    get: Callable[[WorkerMetrics], float | int | None],
    scale: float,
) -> list[float | None]:
    return [_scaled(get(s.metrics), scale) for s in samples]


def _gpu_series(
    samples: Sequence[MetricsSample], get: Callable[[GpuMetrics], float | int | None], scale: float
) -> list[Series]:
    indexes = sorted({g.index for s in samples for g in s.metrics.gpus})
    series = []
    for index in indexes:
        values = []
        for s in samples:
            gpu = next((g for g in s.metrics.gpus if g.index == index), None)
            values.append(None if gpu is None else _scaled(get(gpu), scale))
        series.append(Series(f"GPU {index}", values))
    return series


def worker_panels(samples: Sequence[MetricsSample], x_range: tuple[float, float]) -> list[Panel]:
    """A worker's machine: CPU, memory, per-GPU utilisation and memory, disk, network."""
    x = [s.at.timestamp() for s in samples]

    def panel(id_: str, title: str, series: list[Series]) -> Panel:
        return Panel(id=id_, title=title, x=x, series=series, x_range=x_range)

    return [
        panel("cpu", "CPU (%)", [Series("cpu", _field(samples, lambda m: m.cpu_percent, 1))]),
        panel(
            "memory",
            "Memory (GiB)",
            [
                Series("used", _field(samples, lambda m: m.memory_used, _GIB)),
                Series("total", _field(samples, lambda m: m.memory_total, _GIB)),
            ],
        ),
        panel("gpu-util", "GPU utilisation (%)", _gpu_series(samples, _gpu_util, 1)),
        panel("gpu-memory", "GPU memory used (GiB)", _gpu_series(samples, _gpu_memory, _GIB)),
        panel(
            "disk",
            "Disk I/O (MB/s)",
            [
                Series("read", _field(samples, lambda m: m.disk_read_bps, _MB)),
                Series("write", _field(samples, lambda m: m.disk_write_bps, _MB)),
            ],
        ),
        panel("disk-free", "Disk free (GiB)", [Series("free", _field(samples, _disk_free, _GIB))]),
        panel(
            "network",
            "Network (MB/s)",
            [
                Series("received", _field(samples, lambda m: m.net_rx_bps, _MB)),
                Series("sent", _field(samples, lambda m: m.net_tx_bps, _MB)),
            ],
        ),
    ]


def _gpu_util(g: GpuMetrics) -> float | None:
    return g.utilization_percent


def _gpu_memory(g: GpuMetrics) -> int | None:
    return g.memory_used


def _disk_free(m: WorkerMetrics) -> int | None:
    return m.disk_free


def activity_panel(points: Sequence[ActivityPoint]) -> Panel:
    """Workers reporting (total) and running a task (active), over time."""
    return Panel(
        id="activity",
        title="Workers: active (running a task) vs total (reporting)",
        x=[p.at.timestamp() for p in points],
        series=[
            Series("active", [float(p.active) for p in points]),
            Series("total", [float(p.total) for p in points]),
        ],
    )


def queue_panels(series: dict[str, list[QueuePoint]]) -> list[Panel]:
    """Each queue's length and mean wait over time."""
    first = next(iter(series.values()), [])
    x = [p.at.timestamp() for p in first]
    lengths = [Series(name, [float(p.length) for p in pts]) for name, pts in series.items()]
    waits = [Series(name, [p.average_wait_seconds for p in pts]) for name, pts in series.items()]
    return [
        Panel(id="queue-length", title="Queue length (tasks waiting)", x=x, series=lengths),
        Panel(
            id="queue-wait",
            title="Wait before running (s, mean)",
            x=x,
            series=waits,
            span_gaps=True,
        ),
    ]


def scalar_panels(points: Sequence[ScalarPoint]) -> list[Panel]:
    """One chart per scalar title, one line per series, by iteration."""
    titles: dict[str, dict[str, dict[int, float]]] = {}
    for p in points:
        titles.setdefault(p.title, {}).setdefault(p.series, {})[p.iteration] = p.value
    panels = []
    for number, (title, by_series) in enumerate(titles.items()):
        x = sorted({i for values in by_series.values() for i in values})
        series = [Series(name, [values.get(i) for i in x]) for name, values in by_series.items()]
        panels.append(
            Panel(
                id=f"scalar-{number}",
                title=title,
                x=[float(i) for i in x],
                series=series,
                time=False,
            )
        )
    return panels
