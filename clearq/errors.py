"""The exceptions clearq raises.

Every error a person can see says what went wrong and what to do. Driver and subprocess
errors are translated into this tree where they enter the package::

    ClearqError
    ├── ConfigError              settings that cannot work (bad database URL, ...)
    ├── StoreError               the database said no
    │   ├── SchemaError          the database's schema is missing or too new
    │   ├── NotFound             no task / queue / worker by that id or name
    │   ├── AlreadyExists        a queue of that name exists
    │   ├── IllegalTransition    a task status change the state machine forbids
    │   ├── QueueNotEmpty        deleting a queue that still holds entries
    │   ├── LeaseLost            a worker wrote about an attempt that is no longer its own
    │   └── StoreUnavailable     the database cannot answer now (busy, timed out): retry
    │       └── ConnectionLost   the database cannot be reached or dropped the connection
    ├── InvalidInput             a value a user gave that cannot be used
    │   └── ChannelRefused       a task asked its agent's channel for what its attempt may
    │                            not do (another task's row, no token, no database access)
    ├── TaskEnded                a task waited on ended in a status asked to raise on
    │                            (also a RuntimeError, as ClearML's wait_for_status raises)
    ├── WaitTimeout              a wait ran out of time (also a TimeoutError)
    ├── CaptureError             git could not describe the code (clearq.sdk.capture.git)
    ├── WorkspaceError           a task's code could not be rebuilt (clearq.runtime.workspace)
    ├── SlurmError               a Slurm command failed (clearq.runtime.slurmcli)
    ├── EnvBuildError            a task's Python environment could not be built (clearq.envs);
    │                            ``failure`` says why, ``infra`` whether a retry may help
    └── ContainerError           Docker mode could not run a task's container (clearq.envs.docker)
        ├── EngineUnavailable    no Docker engine answers
        ├── ImageNotFound        the image is not on this machine and cannot be pulled
        ├── DockerArgsRefused    extra docker arguments or packages outside the allowed subset
        ├── ContainerStepFailed  a step in a container failed; ``code`` is the bootstrap's
        └── ContainerInterrupted a stop came while the environment was being built
"""

from __future__ import annotations

import enum


class ClearqError(Exception):
    """Base of every error clearq raises on purpose."""


class ConfigError(ClearqError):
    """Settings that cannot work."""


class InvalidInput(ClearqError):
    """A value given by a user that cannot be used as it is."""


class ChannelRefused(InvalidInput):
    """A task under an agent asked for something its attempt's channel does not allow.

    The channel (``clearq.runtime.channel``) serves one attempt: its own record, its
    parameters, its results. Anything else needs the database, which only a task on an
    agent started with ``--allow-controllers`` is given.
    """


class TaskEnded(ClearqError, RuntimeError):
    """A task waited on ended in one of the statuses the caller asked to raise on."""


class WaitTimeout(ClearqError, TimeoutError):
    """A wait for tasks ran out of time before they ended."""


class StoreError(ClearqError):
    """The store refused an operation."""


class SchemaError(StoreError):
    """The database schema is not the one this clearq expects."""


class NotFound(StoreError):
    """No record by that id or name."""


class AlreadyExists(StoreError):
    """A record with that unique name exists already."""


class IllegalTransition(StoreError):
    """A task status change that the lifecycle does not allow."""


class QueueNotEmpty(StoreError):
    """A queue still holds entries."""


class LeaseLost(StoreError):
    """The attempt a worker wrote about is no longer its own.

    The lease expired and the reaper requeued or failed the task, or the task was
    stopped or reset. The worker must stop working on it: nothing it writes about that
    attempt will be kept.
    """


class StoreUnavailable(StoreError):
    """The database cannot answer now: a fault of the infrastructure, not of the request.

    The SQLite file stayed locked past the busy timeout, or PostgreSQL gave up on a
    statement (``statement_timeout``) or is shutting down. The same call may succeed
    later: an agent retries it, and a task it was running is requeued, never failed.
    """


class ConnectionLost(StoreUnavailable):
    """The database cannot be reached, or the connection to it was dropped.

    The server restarted or is down, the network dropped the connection, or a
    connection timeout passed. Whether the statement in flight was applied is unknown:
    every write clearq retries is fenced, so applying it twice changes nothing.
    """


class EnvFailure(enum.StrEnum):
    """Why an environment could not be built."""

    REQUIREMENT = "requirement"
    """A package or version that cannot be had, or a line that is not a requirement."""
    PYTHON = "python"
    """The requested Python version cannot be found or installed."""
    TOOL = "tool"
    """The tool the spec needs (conda, ...) is not on this machine."""
    NETWORK = "network"
    """A package index or download could not be reached."""
    SYSTEM = "system"
    """The machine failed the build: disk full, permissions."""
    INSTALLER = "installer"
    """The installer failed for another reason; its message says which."""


INFRA_FAILURES = frozenset({EnvFailure.NETWORK, EnvFailure.SYSTEM})


class EnvBuildError(ClearqError):
    """A task's environment could not be built.

    ``failure`` says why; ``requirement`` names the line that failed when one did;
    ``summary`` is the one-line reason (for a task's status), ``output`` keeps the
    installer's own message. ``infra`` is True for failures of the network or the
    machine, which a retry (elsewhere, or later) may fix.
    """

    def __init__(
        self,
        failure: EnvFailure,
        message: str,
        *,
        requirement: str | None = None,
        manager: str | None = None,
        output: str = "",
    ) -> None:
        self.failure = failure
        self.summary = message
        self.requirement = requirement
        self.manager = manager
        self.output = output
        text = f"{message}\n{manager or 'installer'} said:\n{output}" if output else message
        super().__init__(text)

    @property
    def infra(self) -> bool:
        """True when the network or the machine failed, not the spec."""
        return self.failure in INFRA_FAILURES


class ContainerError(ClearqError):
    """Docker mode could not prepare, start or follow a task's container."""


class EngineUnavailable(ContainerError):
    """No Docker engine answers on this machine."""


class ImageNotFound(ContainerError):
    """A task's image is neither on this machine nor pullable from a registry."""


class DockerArgsRefused(ContainerError):
    """A task asked for docker arguments or packages outside the allowed subset."""


class ContainerStepFailed(ContainerError):
    """A step run in a container (the environment's build) failed with exit ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ContainerInterrupted(ContainerError):
    """The run was asked to stop before its task's container started."""
