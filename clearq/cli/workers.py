"""``clearq workers``: who serves which queues, what they run, how their machines are;
drain, pause and resume them from any machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, age, dump, out, print_json, say, table
from clearq.enums import WorkerCommand

if TYPE_CHECKING:
    from rich.table import Table

    from clearq.models import MetricsSample, WorkerInfo, WorkerMetrics

app = typer.Typer(
    help="Workers: list them (the default); drain, pause or resume one from any machine.",
    invoke_without_command=True,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="A worker id (host:name, with its sub-workers), an agent's name, or a host.",
        show_default=False,
    ),
]


@app.callback()
def workers_callback(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List workers (``clearq workers`` is ``clearq workers list``)."""
    if ctx.invoked_subcommand is None:
        list_command(ctx, as_json=as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List workers: state, queues, current tasks, last seen, latest CPU/memory/GPU figures."""
    with cli_context(ctx).store() as store:
        workers = store.workers.list()
        latest = store.workers.latest_metrics()
    if as_json:
        print_json([_json(w, latest.get(w.id)) for w in workers])
    elif not workers:
        say("no workers: start one with `clearq agent --queue NAME`")
    else:
        out().print(_table(workers, latest))


@app.command("drain")
def drain_command(ctx: typer.Context, name: NameArg) -> None:
    """Let a worker finish its running tasks, claim nothing more, then exit (0)."""
    _command(ctx, name, WorkerCommand.DRAIN, "draining: it finishes its running tasks and exits")


@app.command("pause")
def pause_command(ctx: typer.Context, name: NameArg) -> None:
    """Stop a worker claiming until `clearq workers resume`; its running tasks go on."""
    _command(ctx, name, WorkerCommand.PAUSE, "paused: it claims nothing until resumed")


@app.command("resume")
def resume_command(ctx: typer.Context, name: NameArg) -> None:
    """Let a paused (or draining, not yet exited) worker claim again."""
    _command(ctx, name, None, "resumed: it claims again")


def _command(ctx: typer.Context, name: str, command: WorkerCommand | None, what: str) -> None:
    with cli_context(ctx).store() as store:
        ids = store.workers.set_command(name, command)
    for worker_id in ids:
        say(f"{worker_id} {what}")


def _state(worker: WorkerInfo) -> str:
    if worker.command is WorkerCommand.DRAIN:
        return "draining"
    if worker.command is WorkerCommand.PAUSE:
        return "paused"
    return worker.state.value


def _json(worker: WorkerInfo, sample: MetricsSample | None) -> dict[str, Any]:
    data = dump(worker)
    data["metrics"] = None if sample is None else dump(sample)
    return data


def _table(workers: list[WorkerInfo], latest: dict[str, MetricsSample]) -> Table:
    from clearq.models import WorkerMetrics

    grid = table("WORKER", "STATE", "QUEUES", "RUNNING", "LAST SEEN", "CPU", "MEMORY", "GPUS")
    for w in workers:
        sample = latest.get(w.id)
        metrics = sample.metrics if sample is not None else WorkerMetrics()
        grid.add_row(
            w.id,
            _state(w),
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
