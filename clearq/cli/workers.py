"""``clearq workers``: who serves which queues, what they run, how their machines are."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, age, dump, out, print_json, say, table
from clearq.models import MetricsSample, WorkerInfo, WorkerMetrics


def workers_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List workers: queues, current tasks, last seen, latest CPU/memory/GPU figures."""
    with cli_context(ctx).store() as store:
        workers = store.workers.list()
        latest = store.workers.latest_metrics()
    if as_json:
        print_json([_json(w, latest.get(w.id)) for w in workers])
    elif not workers:
        say("no workers: start one with `clearq agent --queue NAME`")
    else:
        out.print(_table(workers, latest))


def _json(worker: WorkerInfo, sample: MetricsSample | None) -> dict[str, Any]:
    data = dump(worker)
    data["metrics"] = None if sample is None else dump(sample)
    return data


def _table(workers: list[WorkerInfo], latest: dict[str, MetricsSample]) -> Table:
    grid = table("WORKER", "STATE", "QUEUES", "RUNNING", "LAST SEEN", "CPU", "MEMORY", "GPUS")
    for w in workers:
        sample = latest.get(w.id)
        metrics = sample.metrics if sample is not None else WorkerMetrics()
        grid.add_row(
            w.id,
            w.state.value,
            ", ".join(w.queues),
            "\n".join(str(t) for t in w.tasks) or "-",
            age(w.last_seen),
            "-" if metrics.cpu_percent is None else f"{metrics.cpu_percent:.0f}%",
            _memory(metrics),
            _gpus(metrics),
        )
    return grid


def _memory(m: WorkerMetrics) -> str:
    if m.memory_used is None or m.memory_total is None:
        return "-"
    return f"{m.memory_used / 2**30:.1f}/{m.memory_total / 2**30:.1f} GiB"


def _gpus(m: WorkerMetrics) -> str:
    parts = []
    for g in m.gpus:
        util = "-" if g.utilization_percent is None else f"{g.utilization_percent:.0f}%"
        memory = (
            ""
            if g.memory_used is None or g.memory_total is None
            else f" {g.memory_used / 2**30:.1f}/{g.memory_total / 2**30:.1f} GiB"
        )
        parts.append(f"{g.index}: {util}{memory}")
    return "\n".join(parts) or "-"
