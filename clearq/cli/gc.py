"""``clearq gc``: remove what nothing needs any more, on this machine and in the store.

In the store, by the retention settings (nothing unless set): console lines
(``CLEARQ_RETENTION_LOGS_DAYS``) and scalar points and plots
(``CLEARQ_RETENTION_METRICS_DAYS``) of ended tasks, and tasks archived long ago
(``CLEARQ_RETENTION_ARCHIVED_DAYS``, deleted with their files). On this machine: the
files of deleted tasks under the artifacts root, built environments unused for
``CLEARQ_RETENTION_ENVS_DAYS`` (30) and git mirrors no task names and no clone used for
``CLEARQ_RETENTION_MIRRORS_DAYS`` (30). ``--dry-run`` prints what would go, with sizes,
and changes nothing. Run it on every machine with agents (the files are each machine's),
from cron or a systemd timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import say

if TYPE_CHECKING:
    from clearq.config import Settings
    from clearq.runtime.housekeeping import Removal
    from clearq.scheduler.store import Store


def gc_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would go, with sizes; change nothing.")
    ] = False,
    env_days: Annotated[
        float | None,
        typer.Option(help="Unused environments older than this go (CLEARQ_RETENTION_ENVS_DAYS)."),
    ] = None,
    mirror_days: Annotated[
        float | None,
        typer.Option(
            help="Unreferenced git mirrors unused this long go (CLEARQ_RETENTION_MIRRORS_DAYS)."
        ),
    ] = None,
) -> None:
    """Remove old logs and metrics, long-archived tasks, files of deleted tasks, unused
    environments and git mirrors (retention settings; see README, Cleanup)."""
    # The store, envs and housekeeping load only once the flags are read.
    from clearq.runtime.housekeeping import (
        DAY_SECONDS,
        MIRRORS_DIRNAME,
        deleted_task_folders,
        unreferenced_mirrors,
    )

    context = cli_context(ctx)
    settings = context.settings()
    changes: dict[str, object] = {}
    if env_days is not None:
        changes["retention_envs_days"] = env_days
    if mirror_days is not None:
        changes["retention_mirrors_days"] = mirror_days
    settings = settings.replace(**changes) if changes else settings
    verb = "would remove" if dry_run else "removed"
    with context.store() as store:
        _store_retention(store, settings, verb, dry_run=dry_run)
        removals = deleted_task_folders(
            settings.artifacts_dir, store.cleanup.existing, dry_run=dry_run
        )
        removals += unreferenced_mirrors(
            settings.home_dir / MIRRORS_DIRNAME,
            store.cleanup.repositories(),
            unused_seconds=settings.retention_mirrors_days * DAY_SECONDS,
            dry_run=dry_run,
        )
    removals += _stale_envs(settings, dry_run=dry_run)
    _print_removals(removals, verb)


def _store_retention(store: Store, settings: Settings, verb: str, *, dry_run: bool) -> None:
    from clearq.runtime.housekeeping import DAY_SECONDS, apply_retention

    cleanup = store.cleanup
    logs_days = settings.retention_logs_days
    metrics_days = settings.retention_metrics_days
    archived_days = settings.retention_archived_days
    if dry_run:
        logs = None if logs_days is None else cleanup.count_old_logs(logs_days * DAY_SECONDS)
        points = (
            None if metrics_days is None else cleanup.count_old_scalars(metrics_days * DAY_SECONDS)
        )
        old = (
            None
            if archived_days is None
            else len(cleanup.archived_before(archived_days * DAY_SECONDS))
        )
        files = ""
    else:  # the same bounded steps as the agents' retention (runtime.housekeeping)
        done = apply_retention(cleanup, settings)
        logs, points, old = done.log_lines, done.scalar_rows, done.tasks
        files = f" and {done.files} file(s)"
    if logs_days is not None:
        say(f"{verb} {logs} log line(s) of tasks ended over {logs_days:g} days ago")
    if metrics_days is not None:
        older = f"older than {metrics_days:g} days"
        say(f"{verb} {points} scalar point(s) and plot(s) of ended tasks {older}")
    if archived_days is not None:
        say(f"{verb} {old} task(s) archived over {archived_days:g} days ago{files}")


def _stale_envs(settings: Settings, *, dry_run: bool) -> list[Removal]:
    from clearq.envs.cache import EnvCache
    from clearq.runtime.housekeeping import DAY_SECONDS, Removal

    cache = EnvCache.from_settings(settings)
    gone = cache.evict_unused_for(settings.retention_envs_days * DAY_SECONDS, dry_run=dry_run)
    days = settings.retention_envs_days
    return [
        Removal("environment", e.path, e.size_bytes, f"unused for over {days:g} days") for e in gone
    ]


def _print_removals(removals: list[Removal], verb: str) -> None:
    if not removals:
        say(f"{verb} no files: no deleted task's files, unused environment or unused mirror")
        return
    for r in removals:  # one line each, never cut: paths are long
        say(f"{verb} {r.kind} {r.path} ({_size(r.size_bytes)}): {r.why}")
    total = sum(r.size_bytes for r in removals)
    say(f"{verb} {len(removals)} item(s), {_size(total)} in all")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value, unit = float(n) / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"
