"""What ``clearq agent`` checks before it serves: its GPUs are there, its queues exist,
its claim windows parse.

An agent that starts on a queue nobody made, or on GPUs this machine does not have,
would wait for ever without a word; it refuses to start instead, naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from clearq.errors import AlreadyExists, InvalidInput
from clearq.ports import QueueActions
from clearq.runtime.gpu_metrics import GpuReader
from clearq.runtime.gpus import parse_gpus
from clearq.scheduler.claim_windows import ClaimWindows


def claim_windows(uptime: Sequence[str], downtime: Sequence[str]) -> ClaimWindows:
    """The ``--uptime`` / ``--downtime`` windows; InvalidInput naming the one that is wrong."""
    return ClaimWindows.parse(uptime, downtime)


def agent_gpus(
    gpus: str | None, *, cpu_only: bool, dynamic: bool, unchecked: bool
) -> tuple[str, ...] | None:
    """The devices the flags give the agent, checked against this machine's."""
    detected, why = (None, "") if gpus is None or cpu_only or unchecked else GpuReader.probe()
    devices = parse_gpus(gpus, cpu_only=cpu_only, detected=detected, why=why)
    if dynamic and not devices:
        raise InvalidInput("--dynamic-gpus needs the devices to share: give --gpus")
    return devices


def ensure_queues(queues: QueueActions, names: Sequence[str], *, create: bool) -> list[str]:
    """Check that the queues exist, or (``create``) make those missing; the ones made."""
    existing = {q.name for q in queues.list()}
    missing = [name for name in dict.fromkeys(names) if name not in existing]
    if missing and not create:
        listed = ", ".join(repr(n) for n in missing)
        commands = "; ".join(f"`clearq queue create {n}`" for n in missing)
        noun, them = ("queue", "it") if len(missing) == 1 else ("queues", "them")
        raise InvalidInput(
            f"no {noun} named {listed}: create {them} first ({commands}) "
            "or start the agent with --create-queue"
        )
    made = []
    for name in missing:
        try:
            queues.create(name)
            made.append(name)
        except AlreadyExists:  # another agent made it just now
            continue
    return made
