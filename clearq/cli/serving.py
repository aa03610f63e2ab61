"""Whether anyone will take a queue's tasks: the warning ``clearq task enqueue`` gives.

A task put in a queue no live worker serves waits silently; the person enqueuing it
should hear so at once. Live: registered, active and heard from within a lease
(``WorkerAdmin.serving``); a paused or draining worker is named but does not count.
Claim windows (``--uptime``) are the agent's own and not known here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearq.enums import WorkerCommand

if TYPE_CHECKING:
    from clearq.ports import WorkerAdmin


def unserved_warning(workers: WorkerAdmin, queue: str) -> str | None:
    """What to warn about ``queue``'s new task, or None when a live worker takes it."""
    serving = workers.serving(queue)
    if any(w.command is None for w in serving):
        return None
    held = ", ".join(
        f"{w.id} is {'draining' if w.command is WorkerCommand.DRAIN else 'paused'}" for w in serving
    )
    return (
        f"no live worker serves queue {queue!r}{f' ({held})' if held else ''}: the task "
        f"waits until one does (`clearq agent -q {queue}`"
        f"{', `clearq workers resume NAME`' if held else ''})"
    )
