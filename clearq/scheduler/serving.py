"""Whether anyone will take a queue's tasks: the warning on enqueue.

A task put in a queue no worker will claim from waits silently; the person enqueuing it
should hear so at once, wherever they enqueue: ``clearq task enqueue``, the SDK's
``Task.enqueue`` (a ``logging`` warning) and the page's Enqueue. A worker counts when it
is live (registered, active and heard from within a lease: ``WorkerAdmin.serving``), not
paused or draining, and inside its claim windows now (``agent --uptime/--downtime``, as
it published them: ``ClaimWindows.published``); the others are named with why they do
not count, and a worker outside its window with when it opens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from clearq.enums import WorkerCommand
from clearq.errors import ClearqError
from clearq.scheduler.claim_windows import ClaimWindows

if TYPE_CHECKING:
    from clearq.models import WorkerInfo
    from clearq.ports import WorkerAdmin


def unserved_warning(
    workers: WorkerAdmin, queue: str, *, now: datetime | None = None
) -> str | None:
    """What to warn about ``queue``'s new task, or None when a worker claims from it now."""
    moment = now or datetime.now(UTC)
    held: list[str] = []
    for worker in workers.serving(queue):
        why = _not_claiming(worker, moment)
        if why is None:
            return None
        held.append(why)
    resumable = any(w.endswith(("paused", "draining")) for w in held)
    why = f" ({'; '.join(held)})" if held else ""
    return (
        f"no live worker serves queue {queue!r}{why}: "
        f"the task waits until one does (`clearq agent -q {queue}`"
        f"{', `clearq workers resume NAME`' if resumable else ''})"
    )


def _not_claiming(worker: WorkerInfo, moment: datetime) -> str | None:
    """Why ``worker`` does not claim at ``moment``; None when it does."""
    if worker.command is not None:
        state = "draining" if worker.command is WorkerCommand.DRAIN else "paused"
        return f"{worker.id} is {state}"
    if not worker.windows:
        return None
    try:
        windows = ClaimWindows.from_published(worker.windows)
    except ClearqError:
        return None  # windows this clearq cannot read: the worker is given the benefit
    if windows.allows(moment):
        return None
    opens = windows.next_change(moment)
    if opens is None:
        return f"{worker.id} is outside its claim windows ({windows.describe()})"
    return f"{worker.id} is outside its claim windows until {_when(opens, moment)}"


def _when(at: datetime, moment: datetime) -> str:
    """``HH:MM`` on this machine's clock (with the day when it is not today's)."""
    local, today = at.astimezone(), moment.astimezone()
    if local.date() == today.date():
        return f"{local:%H:%M}"
    return f"{local:%a %H:%M}"
