"""clearq: capture runnable ML tasks, queue them, run them anywhere.

The database is the only server: PostgreSQL for many machines, an SQLite file on one.

    from clearq import Task
    task = Task.init(project_name="mnist", task_name="baseline")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("clearq")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from clearq.sdk import Logger, Task

__all__ = ["Logger", "Task", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `clearq` tools that never touch the SDK stay light.
    if name in ("Task", "Logger"):
        from clearq import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'clearq' has no attribute {name!r}")
