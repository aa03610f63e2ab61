"""``clearq reap``: one pass of the reaper, by hand."""

from __future__ import annotations

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, dump, print_json, say


def reap_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Requeue (or fail, past max attempts) tasks whose lease expired; mark silent workers gone."""
    with cli_context(ctx).store() as store:
        report = store.leases.reap_by_hand()
    if as_json:
        print_json(dump(report))
        return
    if not (report.requeued or report.failed or report.workers_gone):
        say("nothing to reap: every running task's lease is current")
        return
    _list("requeued (back at the front of their queue)", [str(t) for t in report.requeued])
    _list("failed (all attempts spent, or no queue)", [str(t) for t in report.failed])
    _list("workers marked gone", list(report.workers_gone))


def _list(title: str, items: list[str]) -> None:
    if not items:
        return
    say(f"{title}: {len(items)}")
    for item in items:
        say(f"  {item}")
