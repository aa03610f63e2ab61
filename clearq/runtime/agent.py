"""The agent: a worker that claims tasks from its queues and runs them.

One main thread waits for work (LISTEN on PostgreSQL, a short poll on SQLite) and claims
into free slots (while its hints arrive it re-claims every ``LISTENING_WAIT_SECONDS``,
else every second; the agents of a machine share one LISTEN connection,
:mod:`clearq.scheduler.relay`); each claimed task runs in a thread of its own through the
:class:`Executor`; a heartbeat thread renews the leases of running tasks, passes stop
requests and lost leases to them, records this machine's metrics (an idle agent's
heartbeat and sample are one write) and reaps the expired leases of other workers (on
a shared server each agent of the fleet takes its share of the passes:
``reap_interval``). The agent's own lifecycle is an explicit enum. Before each claim
a :class:`ClaimGate` says whether it may take new work: an operator may have drained
it (it exits once its tasks have ended) or paused it, or it may be outside its
``--uptime`` windows.

Slots: one by default; ``services`` runs up to N tasks at once, each under a sub-worker
of its own (``host:name:1`` ...); with dynamic GPUs a task is claimed only from queues
whose per-task GPU need fits the devices free now, and gets distinct devices.

The database may go away (a restart, a dropped connection, a network partition): every
store call is retried on its next round, the listener reconnects on its own, and the
outage is reported once when it starts and once when it ends. Each running task holds
its attempt until a give-up time on the agent's monotonic clock that every successful
lease renewal moves on (``HOLD_FRACTION`` of the lease after the renewal was sent); an
agent cut off for longer stops the task itself, before the lease can expire and
another agent claim it. An agent frozen (SIGSTOP, a paused VM) cannot: the task's
watchdog (:mod:`clearq.runtime.watchdog`), fed each give-up time, ends the task and its
children at that time in its place.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from clearq.errors import ClearqError, LeaseLost, StoreError, StoreUnavailable
from clearq.models import Claim, ClaimOrder, TaskStatus, WorkerCommand
from clearq.ports import AgentStore, ClaimPort, GangPort
from clearq.runtime.claimgate import (
    COMMAND_POLL_SECONDS,
    NOTIFIED_COMMAND_POLL_SECONDS,
    ClaimGate,
    Gate,
)
from clearq.runtime.executor import Control, Executor, Outcome
from clearq.runtime.exits import OnceExit
from clearq.runtime.gangs import GangClaimer, machine_address
from clearq.runtime.gpus import GpuPool
from clearq.runtime.graces import DEFAULT_SHUTDOWN_GRACE_SECONDS as DEFAULT_SHUTDOWN_GRACE_SECONDS
from clearq.runtime.housekeeping import RetentionTurns
from clearq.runtime.monitor import MachineMonitor
from clearq.runtime.outage import Outage, retry_while_held
from clearq.scheduler.claim_windows import ClaimWindows
from clearq.scheduler.fenced import ready_in
from clearq.scheduler.notify import ENQUEUE_CHANNEL, WORKER_CHANNEL, Listener

log = logging.getLogger(__name__)

SQLITE_POLL_SECONDS = 0.25
PG_WAIT_SECONDS = 1.0
"""An idle agent's re-claim interval where hints may be lost (no LISTEN connection)."""
LISTENING_WAIT_SECONDS = 15.0
"""The same while its listener is connected: an enqueue, a finished task, a raised cap or
quota wake it, and a retry's entry says in its hint when its delay ends (the agent
re-claims then), so this re-claim only catches hints that were missed (an agent that
started after them, a schedule's next time). 500 idle agents re-claiming every second
cost the server half a core."""
DUE_SLACK_SECONDS = 0.05
"""How long after a delayed entry's time its agent re-claims (the hint is sent when the
entry is written, so the agent's clock is never early; this covers rounding)."""
BUSY_BEAT_SECONDS = 1.0
METRICS_SECONDS = 5.0
"""How often an agent running tasks records its machine's metrics."""
REAP_MAX_SECONDS = 600.0
"""The longest an agent of a large fleet waits between its reaper passes (reap_interval)."""
IDLE_METRICS_SECONDS = 30.0
"""The same while it runs nothing, with its heartbeat in the same write (at most every
third of a lease): 500 idle agents would otherwise write 100 samples a second."""
HOLD_FRACTION = 0.75
"""An attempt is given up this fraction of a lease after its last renewal was sent."""


class AgentState(enum.StrEnum):
    """Where the agent is in its life."""

    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


def reap_interval(lease: float, agents: int, rng: random.Random) -> float:
    """Seconds to an agent's next reaper pass, in a fleet of ``agents`` on one server.

    Each pass is the same fleet-wide work, so the fleet as a whole should reap about
    every quarter lease, not every agent every half lease (500 idle agents made about 17
    passes a second). Each agent takes its share, at a random moment (Sidekiq's
    scheduled poller spreads its polls the same way): a lone agent every half lease,
    the agent of a large fleet at most every ``REAP_MAX_SECONDS``, so that the agents
    left after most of a fleet has gone still reap within minutes.
    """
    spread = max(lease / 2, min(REAP_MAX_SECONDS, agents * lease / 4))
    return spread * rng.uniform(0.5, 1.5)


def worker_id(name: str | None) -> str:
    """``host:NAME``; without a name, ``host:agent-<pid>`` (unique on the machine)."""
    return f"{socket.gethostname()}:{name or f'agent-{os.getpid()}'}"


@dataclass(frozen=True)
class AgentOptions:
    """How an agent serves (the ``clearq agent`` flags)."""

    queues: tuple[str, ...]
    order: ClaimOrder = ClaimOrder.STRICT
    name: str | None = None
    gpus: tuple[str, ...] | None = None
    """Devices this agent owns; None: no binding (the process's own view)."""
    dynamic_gpus: bool = False
    services: int = 0
    """Up to this many tasks at once (0: one at a time)."""
    once: bool = False
    idle_exit: float | None = None
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    windows: ClaimWindows | None = None
    """When it claims (``--uptime`` / ``--downtime``); None: always."""


@dataclass
class _Slot:
    worker: str
    claimer: ClaimPort
    claim: Claim | None = None
    control: Control = field(default_factory=Control)
    gpus: tuple[str, ...] | None = None
    thread: threading.Thread | None = None


class Agent:
    """Serves queues until told to stop (or ``once`` / ``idle_exit``)."""

    def __init__(
        self,
        store: AgentStore,
        executor: Executor,
        options: AgentOptions,
        *,
        gangs: GangPort | None = None,
    ) -> None:
        if not options.queues:
            raise ClearqError("an agent needs at least one queue: give --queue")
        self._store = store
        self._executor = executor
        self._options = options
        self.host = socket.gethostname()
        self.worker = worker_id(options.name)
        self.state = AgentState.STARTING
        self._pool = GpuPool(options.gpus or (), dynamic=options.dynamic_gpus)
        count = options.services or (len(self._pool.devices) if options.dynamic_gpus else 1)
        self._slots = [self._slot(i, max(count, 1)) for i in range(max(count, 1))]
        self._worker_ids = sorted({s.worker for s in self._slots})
        self._gate = ClaimGate(
            self._read_command,
            say=self._say,
            windows=options.windows,
            poll_seconds=NOTIFIED_COMMAND_POLL_SECONDS if store.notifies else COMMAND_POLL_SECONDS,
        )
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._random = random.Random()  # noqa: S311 - spreads reaper passes, no secret
        self._probe = False
        """The next claim follows a wait that heard no hint: it first asks whether anything
        is ready (``ClaimPort.anything_ready``), one cheap read, before claiming."""
        self._due: float | None = None
        """When (monotonic) a delayed entry it was told of may be claimed."""
        self._stopping = threading.Event()
        self._listener: Listener | None = None
        """The hints the claiming loop waits on while it serves; a stop wakes it."""
        self._gang_port = gangs
        self._gangs = (
            None
            if gangs is None
            else GangClaimer(
                gangs,
                wait_seconds=store.settings.gang_wait_seconds,
                address=machine_address(store.settings.agent_address),
                stopping=self._stopping,
            )
        )
        self._stop_now = threading.Event()
        self._served = 0
        self._ended: OnceExit | None = None
        """How the last task this agent ran ended (``--once``'s exit status)."""
        self._lease = store.settings.lease_seconds
        self._db_outage = Outage("the database", self._say)
        self._listen_outage = Outage("the notification connection", self._say)
        self._monitor = MachineMonitor(
            disk_path=store.settings.home_dir,
            gpus=[int(d) for d in options.gpus or () if d.isdigit()] or None,
        )

    def _slot(self, index: int, count: int) -> _Slot:
        worker = self.worker if count == 1 else f"{self.worker}:{index + 1}"
        claimer = self._store.claimer(worker, self._options.queues, order=self._options.order)
        return _Slot(worker=worker, claimer=claimer)

    # ---- lifecycle ------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; let running tasks end within the grace period (signal-safe).

        Asked again: stop the running tasks now and put them back in their queues. Either
        way the agent says at once what it does (written straight to stderr: this runs in
        a signal handler, maybe in the middle of another write).
        """
        running = sum(1 for slot in self._slots if slot.claim is not None)  # no lock: a hint
        tasks, them, their = (
            ("1 task", "it", "its queue")
            if running == 1
            else (f"{running} tasks", "them", "their queues")
        )
        if self._stopping.is_set():
            self._stop_now.set()
            now = f": stopping {tasks} and putting {them} back in {their}" if running else ""
            self._say_now(f"stopping now{now}")
        elif running:
            grace = self._options.shutdown_grace
            self._say_now(
                f"stopping: waiting up to {grace:g} s for {tasks}; Ctrl-C again to stop {them} now"
            )
        else:
            self._say_now("stopping: no task is running")
        self._stopping.set()
        self._changed.set()
        listener = self._listener
        if listener is not None:  # idle on a listener: it would not hear the Event
            listener.wake()

    def run(self) -> int:
        """Serve until stopped; the process exit code (with ``once``: a :class:`OnceExit`)."""
        self._register()
        beat = threading.Thread(target=self._beat_loop, name="clearq-heartbeat", daemon=True)
        beat.start()
        retention = RetentionTurns(
            self._store.cleanup,
            self._store.settings,
            holder=self.worker,
            stopping=self._stopping,
            say=self._say,
        )
        if retention.wanted:  # its own thread: a long step never delays a lease renewal
            threading.Thread(target=retention.run, name="clearq-retention", daemon=True).start()
        self.state = AgentState.SERVING
        self._say(f"serving {', '.join(self._options.queues)} as {self.worker}")
        try:
            self._serve()
        finally:
            self.state = AgentState.DRAINING
            self._drain()
            self.state = AgentState.STOPPED
            beat.join(timeout=5)
            self._unregister()
            self._monitor.close()
        if not self._options.once:
            return 0
        return int(self._ended if self._ended is not None else OnceExit.NO_TASK)

    def _register(self) -> None:
        gpus = list(self._options.gpus or ())
        windows = self._options.windows.published() if self._options.windows else None
        for worker in self._worker_ids:
            self._store.workers.register(
                worker,
                host=self.host,
                pid=os.getpid(),
                queues=self._options.queues,
                gpus=gpus,
                windows=windows,
            )

    def _unregister(self) -> None:
        for worker in self._worker_ids:
            try:
                self._store.workers.unregister(worker)
            except StoreError as e:
                self._say(f"could not unregister {worker}: {e}")

    # ---- claiming -----------------------------------------------------------------------

    def _serve(self) -> None:
        listener = self._store.listen(on_change=self._listener_changed)
        self._listener = listener
        idle_since = time.monotonic()
        try:
            while not self._stopping.is_set():
                if self._once_done():
                    break
                gate = self._gate_now()
                if gate is Gate.DRAINING and not self._busy():
                    self._say("drained: no task is running; exiting")
                    break
                claimed = self._claim_into_free_slots() if gate is Gate.OPEN else 0
                if claimed or self._busy():
                    idle_since = time.monotonic()
                elif self._idle_for_too_long(idle_since):
                    self._say(f"idle for {self._options.idle_exit:g} s: exiting")
                    break
                if claimed:
                    continue
                self._wait(listener, idle_since)
        finally:
            self._listener = None
            listener.close()

    def _read_command(self) -> WorkerCommand | None:
        return self._store.workers.command(self._worker_ids)

    def _gate_now(self) -> Gate:
        # A store that cannot answer leaves the gate as it was; the claim will say why.
        started = time.monotonic()
        try:
            return self._gate.check()
        except StoreUnavailable as e:
            self._db_outage.failed(e, started=started)
        except StoreError as e:
            self._say(f"cannot read what the operator asked of {self.worker}: {e}")
        return self._gate.gate

    def _once_done(self) -> bool:
        # --once: its one task has run to its end (recorded), not merely been claimed.
        return self._options.once and self._served >= 1 and not self._busy()

    def _claim_into_free_slots(self) -> int:
        probe, self._probe = self._probe, False
        claimed = 0
        for slot in self._slots:
            if slot.claim is not None or self._stopping.is_set():
                continue
            if self._options.once and self._served + claimed >= 1:
                break
            sent = time.monotonic()  # the lease the claim sets starts after this
            try:
                needs = self._queue_needs()
                among = self._pool.claimable_queues(needs)
                if probe and among and not slot.claimer.anything_ready(among):
                    among = []  # nothing due: the claim would find nothing either
                claims = self._claim_among(slot, among) if among else []
            except StoreUnavailable as e:
                self._db_outage.failed(e, started=sent)
                break
            except StoreError as e:
                self._say(f"cannot claim: {e}")
                break
            self._db_outage.ok(started=sent)
            if not claims:
                break
            self._start(slot, claims[0], needs.get(claims[0].queue, 0), sent)
            claimed += 1
        return claimed

    def _claim_among(self, slot: _Slot, among: Sequence[str]) -> list[Claim]:
        gang = None if self._gangs is None else self._gangs.claim(slot.worker, among)
        return [gang] if gang is not None else slot.claimer.claim(1, among=among)

    def _queue_needs(self) -> dict[str, int]:
        if not self._options.dynamic_gpus:
            return dict.fromkeys(self._options.queues, 0)
        needs = {}
        for info in self._store.queues.list():
            if info.name in self._options.queues:
                needs[info.name] = info.gpus
        return {q: needs.get(q, 0) for q in self._options.queues}

    def _start(self, slot: _Slot, claim: Claim, need: int, sent: float) -> None:
        devices = self._pool.take(need if self._options.dynamic_gpus else 0)
        if devices is None:  # cannot happen: the claim was among queues that fit
            self._store.leases.requeue(claim.fence, reason="no free GPU for it on this agent")
            return
        with self._lock:
            slot.claim = claim
            slot.control = Control(hold_until=sent + self._lease * HOLD_FRACTION)
            slot.gpus = devices if self._options.gpus is not None else None
            self._served += 1
        self._say(f"running task {claim.task_id} (attempt {claim.attempt}) from {claim.queue}")
        slot.thread = threading.Thread(
            target=self._run_slot, args=(slot,), name=f"clearq-task-{claim.task_id}", daemon=True
        )
        slot.thread.start()

    def _run_slot(self, slot: _Slot) -> None:
        assert slot.claim is not None
        claim, control = slot.claim, slot.control
        try:
            outcome = self._executor.run(claim, control, slot.gpus)
        except StoreUnavailable as e:  # the database failed the run, not the task's code
            outcome = Outcome(
                None, reason=f"the store failed during the run: {e}", requeue=True, infra=True
            )
        except Exception as e:  # noqa: BLE001 - the agent must outlive any one task
            outcome = Outcome(TaskStatus.FAILED, None, f"agent error: {type(e).__name__}: {e}")
        try:
            self._record(claim, outcome, control)
        finally:
            with self._lock:
                self._pool.give_back(slot.gpus or ())
                slot.claim = None
                slot.gpus = None
            self._gate.wake()  # a drain asked while it ran is seen before the next claim
            self._changed.set()

    def _record(self, claim: Claim, outcome: Outcome, control: Control) -> None:
        # Through an outage the end is written once the database is back, for as long as
        # the attempt is held; past that the reaper gives the task back (or fails it).
        fence = claim.fence
        leases = self._store.leases
        held = lambda: not control.lost  # noqa: E731 - a name for the condition
        self._ended = OnceExit.LOST
        try:
            if outcome.requeue:
                task = retry_while_held(
                    lambda: leases.requeue(
                        fence,
                        reason=outcome.reason,
                        infra=outcome.infra,
                        preempted=outcome.preempted,
                    ),
                    held,
                )
                self._ended = OnceExit.for_status(task.status)
                if task.status is TaskStatus.QUEUED:
                    self._say(f"task {claim.task_id} requeued: {outcome.reason}")
                else:  # its attempts are spent
                    self._say(f"task {claim.task_id} {task.status}: {task.status_reason}")
            elif outcome.status is not None:
                if not self._ends_the_task(claim, outcome):
                    self._ended = OnceExit.COMPLETED
                    self._say(f"task {claim.task_id}: this rank completed; the others run on")
                    return
                reason = outcome.reason
                if claim.gang is not None and reason:
                    reason = f"rank {claim.gang.rank} of {claim.gang.size}: {reason}"
                status = outcome.status
                retry_while_held(
                    lambda: leases.finish(
                        fence, status, exit_code=outcome.exit_code, reason=reason
                    ),
                    held,
                )
                self._ended = OnceExit.for_status(outcome.status)
                detail = f": {outcome.reason}" if outcome.reason else ""
                self._say(f"task {claim.task_id} {outcome.status}{detail}")
            elif control.outlived:
                self._say(
                    f"task {claim.task_id} stopped: its lease could not be renewed for "
                    f"{self._lease * HOLD_FRACTION:g} s; it will run again elsewhere"
                )
            else:
                self._say(f"task {claim.task_id} is no longer this agent's: {outcome.reason}")
        except LeaseLost as e:
            self._say(f"task {claim.task_id}: {e}")
        except StoreError as e:
            self._say(f"could not record how task {claim.task_id} ended: {e}")

    def _ends_the_task(self, claim: Claim, outcome: Outcome) -> bool:
        # A gang's rank that completes ends the task only as its last rank to do so.
        if claim.gang is None or outcome.status is not TaskStatus.COMPLETED:
            return True
        assert self._gang_port is not None  # a gang's claim came through it
        return self._gang_port.complete_rank(claim.fence, claim.gang.rank)

    def _busy(self) -> bool:
        return any(s.claim is not None for s in self._slots)

    def _idle_for_too_long(self, since: float) -> bool:
        limit = self._options.idle_exit
        return limit is not None and time.monotonic() - since >= limit

    def _wait(self, listener: Listener, idle_since: float) -> None:
        full = all(s.claim is not None for s in self._slots)
        if full or not self._store.notifies:
            self._changed.wait(SQLITE_POLL_SECONDS if not full else PG_WAIT_SECONDS)
            self._changed.clear()
            self._probe = True  # a poll: look (a read) before claiming (a write)
            return
        wait = LISTENING_WAIT_SECONDS if listener.connected else PG_WAIT_SECONDS
        if self._due is not None:
            wait = max(0.0, min(wait, self._due - time.monotonic()))
        if self._options.idle_exit is not None and not self._busy():  # exit when it is due
            wait = max(0.0, min(wait, idle_since + self._options.idle_exit - time.monotonic()))
        notices = listener.wait(wait)
        now = time.monotonic()
        self._probe = not notices  # timed out: look before claiming
        if self._due is not None and self._due <= now:
            self._due = None  # the claim that follows takes it
            self._probe = False
        for n in notices:
            delay = ready_in(n.payload) if n.channel == ENQUEUE_CHANNEL else None
            if delay is not None:
                due = now + delay + DUE_SLACK_SECONDS
                self._due = due if self._due is None else min(self._due, due)
        if any(n.channel == WORKER_CHANNEL for n in notices):
            self._gate.wake()

    def _drain(self) -> None:
        deadline = time.monotonic() + self._options.shutdown_grace
        while self._busy() and time.monotonic() < deadline and not self._stop_now.is_set():
            self._changed.wait(0.2)
            self._changed.clear()
        for slot in self._slots:
            if slot.claim is not None:
                slot.control.requeue("the agent is shutting down")
        for slot in self._slots:
            if slot.thread is not None:
                slot.thread.join()

    # ---- heartbeat ----------------------------------------------------------------------

    def _beat_loop(self) -> None:
        # Busy: renew every second, a sample every METRICS_SECONDS. Idle: one write every
        # idle_every (the workers' rows must stay fresher than a lease: ``Workers.serving``),
        # the heartbeat with a sample (at the default lease every one; a short lease's beats
        # carry one every METRICS_SECONDS).
        lease = self._store.settings.lease_seconds
        idle_every = min(IDLE_METRICS_SECONDS, lease / 3)
        idle_sample_every = max(idle_every, METRICS_SECONDS)
        next_reap = next_idle = 0.0
        last_metrics = float("-inf")
        while self.state is not AgentState.STOPPED:
            now = time.monotonic()
            running = self._running()
            if running:
                self._beat(running)
                if now - last_metrics >= METRICS_SECONDS:
                    self._metrics()
                    last_metrics = now
                next_idle = now + idle_every
            elif now >= next_idle:
                if now - last_metrics >= idle_sample_every:
                    self._metrics(seen=True)
                    last_metrics = now
                else:
                    self._beat(running)
                next_idle = now + idle_every
            if now >= next_reap:
                next_reap = now + self._reap()
            time.sleep(min(BUSY_BEAT_SECONDS, lease / 3))

    def _running(self) -> list[_Slot]:
        with self._lock:
            return [s for s in self._slots if s.claim is not None]

    def _beat(self, running: Sequence[_Slot]) -> None:
        held = [(s.claim, s.control) for s in running if s.claim is not None]
        fences = [c.fence for c, _ in held]
        sent = time.monotonic()  # the renewed leases start after this
        try:
            # Every row of this agent (services mode: host:name:k), idle ones too.
            beat = self._store.leases.heartbeat(self._worker_ids, fences)
        except StoreUnavailable as e:
            self._db_outage.failed(e, started=sent)
            return
        except StoreError as e:
            self._say(f"cannot renew leases: {e}")
            return
        self._db_outage.ok(started=sent)
        for renewed, control in held:
            if renewed.task_id in beat.held:
                control.renewed(sent + self._lease * HOLD_FRACTION)
        for slot in running:
            claim = slot.claim
            if claim is None:
                continue
            if claim.task_id in beat.lost:
                slot.control.lose()
            elif claim.task_id in beat.stop_requested:
                slot.control.stop(beat.stop_reasons.get(claim.task_id) or "stop requested")
            elif claim.task_id in beat.overtime:
                limit = self._max_run_seconds(claim)
                slot.control.stop(f"ran longer than its maximum of {limit:g} s")

    def _max_run_seconds(self, claim: Claim) -> float:
        try:
            return self._store.tasks.get(claim.task_id).max_run_seconds or 0.0
        except StoreError:
            return 0.0

    def _reap(self) -> float:
        """One reaper pass; the seconds to this agent's next one."""
        lease = self._store.settings.lease_seconds
        started = time.monotonic()
        try:
            report = self._store.leases.reap()
        except StoreUnavailable as e:
            self._db_outage.failed(e, started=started)
            return lease / 2
        except StoreError as e:
            self._say(f"cannot reap expired leases: {e}")
            return lease / 2
        self._db_outage.ok(started=started)
        for task_id in (*report.requeued, *report.failed):
            self._say(f"reaped the expired lease of task {task_id}")
        if not self._store.notifies:
            return lease / 2  # one machine (SQLite): its reaper needs two looks a lease apart
        return reap_interval(lease, report.active_workers, self._random)

    def _metrics(self, *, seen: bool = False) -> None:
        """Record a sample of the machine; ``seen``: with the heartbeat of every row of
        this agent (services mode: host:name:k), as an idle agent's only write."""
        started = time.monotonic()
        try:
            self._store.workers.record_metrics(
                self.worker, self._monitor.sample(), seen=self._worker_ids if seen else ()
            )
        except StoreUnavailable as e:
            self._db_outage.failed(e, started=started)
        except StoreError as e:
            self._say(f"cannot record machine metrics: {e}")
            if seen:  # the sample cannot be stored: the heartbeat still must be
                self._beat([])
        else:
            self._db_outage.ok(started=started)

    def _listener_changed(self, error: StoreError | None) -> None:
        if error is None:
            self._listen_outage.ok()
        else:
            self._listen_outage.failed(error)

    def _say(self, text: str) -> None:
        log.info("%s", text)

    def _say_now(self, text: str) -> None:
        # Straight to stderr, as the agent's log reads: safe where a signal interrupted a
        # write to it (logging's stream may be in the middle of one).
        os.write(2, f"clearq agent: {text}\n".encode())
