"""An agent's side of gang tasks (``nodes`` > 1): join, wait, run a rank, watch the others.

:class:`GangClaimer` joins the first gang of the agent's queues that has a free rank
(``clearq.scheduler.gangs``) and waits, renewing its rank, until the gang is complete
(then it hands the agent the rank's claim) or ``CLEARQ_GANG_WAIT_SECONDS`` pass (then it
gives the rank back, and the agent goes on with other work). Rank 0 publishes this
machine's address and a free port.

While a rank runs, :func:`gang_watch` renews its rank's lease and looks at the others':
a rank whose agent went silent puts the whole task back in its queue (an infrastructure
failure), and every rank's agent then finds its fence gone and stops its process.
:func:`rank_environment` is what each rank's process gets: ``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``NODE_RANK`` and ``LOCAL_RANK``, and
torchrun's ``PET_*`` settings for code that launches ``torchrun`` on each node.

Host mode and Docker mode run a rank alike: the same variables, the same ``[rank N] ``
log prefix (:func:`rank_prefix`), a run folder and container named per rank
(:func:`rank_suffix`, for ranks of one gang on one machine) and the same watch. In Docker
mode a rank's container shares the host's network (:data:`GANG_NETWORK`): rank 0 listens
on ``MASTER_PORT`` at the host's address, and torch.distributed's backends (gloo, NCCL)
then connect every rank to every other at each one's own address and ports, which a
container behind Docker's bridge could neither announce nor be reached at.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from clearq.errors import LeaseLost, StoreError
from clearq.models import Claim, GangMembership, GangRank
from clearq.ports import GangPort
from clearq.scheduler.gangs import GangLeft

if TYPE_CHECKING:  # the executor imports this module
    from clearq.runtime.executor import Control

log = logging.getLogger(__name__)

GANG_NETWORK = "host"
"""The network of a rank's container in Docker mode: the host's (see the module's doc)."""
WAIT_POLL_SECONDS = 0.2
BEAT_SECONDS = 1.0


def free_port() -> int:
    """A TCP port free on this machine now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return port


def machine_address(configured: str | None) -> str:
    """The address other machines reach this one at: the setting, else the host's."""
    if configured:
        return configured
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class GangClaimer:
    """Claims ranks of gang tasks for an agent's slots."""

    def __init__(
        self, gangs: GangPort, *, wait_seconds: float, address: str, stopping: threading.Event
    ) -> None:
        self._gangs = gangs
        self._wait = wait_seconds
        self._address = address
        self._stopping = stopping
        self._resting: dict[uuid.UUID, float] = {}
        """Gangs this agent gave a rank back to, and until when it leaves them be."""

    def claim(self, worker: str, among: Sequence[str]) -> Claim | None:
        """A rank of a gang that started with this worker in it; None when there was none.

        Blocks while the gang fills, at most the wait bound (then the rank is given back).
        """
        now = time.monotonic()
        self._resting = {t: until for t, until in self._resting.items() if until > now}
        joined = self._gangs.join(
            worker, among, address=self._address, port=free_port(), skip=list(self._resting)
        )
        if joined is None:
            return None
        if joined.claim is not None:
            return joined.claim
        return self._wait_for(joined.membership)

    def claim_task(self, worker: str, task_id: uuid.UUID) -> Claim | None:
        """A rank of one named gang task, once all its ranks joined; None: none was free,
        or the gang did not fill within the bound (the rank was given back)."""
        joined = self._gangs.join_task(worker, task_id, address=self._address, port=free_port())
        if joined is None:
            return None
        if joined.claim is not None:
            return joined.claim
        return self._wait_for(joined.membership)

    def _wait_for(self, m: GangMembership) -> Claim | None:
        log.info("joined task %s as rank %d; waiting for the rest of its gang", m.task_id, m.rank)
        deadline = time.monotonic() + self._wait
        while True:
            if (self._stopping.is_set() or time.monotonic() >= deadline) and self._gangs.leave(m):
                log.info(
                    "gave rank %d of task %s back: its gang did not fill in %g s",
                    m.rank,
                    m.task_id,
                    self._wait,
                )
                # Other work first: the next join of this gang waits as long again.
                self._resting[m.task_id] = time.monotonic() + self._wait
                return None
            try:
                claim = self._gangs.wait(m)
            except GangLeft as e:
                log.info("%s", e)
                return None
            if claim is not None:
                return claim
            time.sleep(WAIT_POLL_SECONDS)


def rank_environment(gang: GangRank, gpus: Sequence[str] | None = None) -> dict[str, str]:
    """The variables torch.distributed and torchrun read, for one rank of a gang.

    The rank's own process is rank ``gang.rank`` of ``gang.size`` (one process per agent).
    For a task whose code starts ``torchrun`` (``python -m torch.distributed.run``) itself,
    torchrun's own settings are given too (it reads ``PET_<OPTION>`` for each option it
    is not given): the gang's node count, this node's rank, rank 0's address and port, and
    one process per GPU the agent gave this rank (one without GPUs); torchrun then sets
    ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` for each process it starts.
    """
    nproc = len(gpus) if gpus else 1
    return {
        "PET_NNODES": str(gang.size),
        "PET_NODE_RANK": str(gang.rank),
        "PET_MASTER_ADDR": gang.master_addr,
        "PET_MASTER_PORT": str(gang.master_port),
        "PET_NPROC_PER_NODE": str(nproc),
        "MASTER_ADDR": gang.master_addr,
        "MASTER_PORT": str(gang.master_port),
        "WORLD_SIZE": str(gang.size),
        "RANK": str(gang.rank),
        "NODE_RANK": str(gang.rank),
        "LOCAL_RANK": "0",
        "CLEARQ_NODE_RANK": str(gang.rank),
        "CLEARQ_NUM_NODES": str(gang.size),
    }


def rank_suffix(gang: GangRank | None) -> str:
    """What a rank's run folder and container name end with (nothing for an ordinary task)."""
    return "" if gang is None else f"-rank{gang.rank}"


def rank_prefix(gang: GangRank | None) -> str:
    """What each line a rank logs starts with (nothing for an ordinary task)."""
    return "" if gang is None else f"[rank {gang.rank}] "


@contextlib.contextmanager
def gang_watch(gangs: GangPort | None, claim: Claim, control: Control) -> Iterator[None]:
    """While a rank runs: renew its lease, stop it when another rank is lost."""
    gang = claim.gang
    if gang is None or gangs is None:
        yield
        return
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(gangs, claim, gang.rank, control, done), daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=10)


def _watch(
    gangs: GangPort, claim: Claim, rank: int, control: Control, done: threading.Event
) -> None:
    while not done.wait(BEAT_SECONDS):
        try:
            why = gangs.beat(claim.fence, rank)
            if why is None:
                continue
            log.info("task %s back in its queue: %s", claim.task_id, why)
        except LeaseLost:
            pass  # another rank ended the attempt first
        except StoreError as e:
            log.warning("cannot renew rank %d of task %s: %s", rank, claim.task_id, e)
            continue
        control.lose()
        return
