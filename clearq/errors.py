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
    │   └── LeaseLost            a worker wrote about an attempt that is no longer its own
    ├── InvalidInput             a value a user gave that cannot be used
    ├── CaptureError             git could not describe the code (clearq.sdk.capture.git)
    └── WorkspaceError           a task's code could not be rebuilt (clearq.runtime.workspace)
"""

from __future__ import annotations


class ClearqError(Exception):
    """Base of every error clearq raises on purpose."""


class ConfigError(ClearqError):
    """Settings that cannot work."""


class InvalidInput(ClearqError):
    """A value given by a user that cannot be used as it is."""


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
