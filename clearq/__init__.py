"""clearq: capture runnable ML tasks, queue them, run them anywhere.

The database is the only server: PostgreSQL for many machines, an SQLite file on one.

    from clearq import Task
    task = Task.init(project_name="mnist", task_name="baseline")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearq.sdk import InputModel, Logger, OutputModel, StorageManager, Task, TaskTypes

    __version__: str

__all__ = [
    "InputModel",
    "Logger",
    "OutputModel",
    "StorageManager",
    "Task",
    "TaskTypes",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `clearq` tools that never touch the SDK stay light.
    if name in ("Task", "Logger", "TaskTypes", "StorageManager", "InputModel", "OutputModel"):
        from clearq import sdk

        return getattr(sdk, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("clearq")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(f"module 'clearq' has no attribute {name!r}")
