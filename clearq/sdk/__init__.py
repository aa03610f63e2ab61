"""What a training script touches: ``Task``, ``Logger`` and their parameters.

No process management here: the agent (``clearq.runtime``) runs tasks; the SDK captures
them and reports from inside them.
"""

from typing import TYPE_CHECKING, Any

from clearq.sdk import parameters
from clearq.sdk.logger import Logger
from clearq.sdk.session import default_store, settings_in_use
from clearq.sdk.task import Task
from clearq.sdk.task_types import TaskTypes

if TYPE_CHECKING:
    from clearq.sdk.function_task import function_script
    from clearq.sdk.model import InputModel, OutputModel
    from clearq.sdk.storage import StorageManager

__all__ = [
    "InputModel",
    "Logger",
    "OutputModel",
    "StorageManager",
    "Task",
    "TaskTypes",
    "default_store",
    "function_script",
    "parameters",
    "settings_in_use",
]


def __getattr__(name: str) -> Any:
    # StorageManager imports fsspec, the models zipfile and shutil: only when asked for.
    if name == "StorageManager":
        from clearq.sdk.storage import StorageManager

        return StorageManager
    if name == "function_script":  # a pipeline's function steps (clearq.automation)
        from clearq.sdk.function_task import function_script

        return function_script
    if name in ("InputModel", "OutputModel"):
        from clearq.sdk import model

        return getattr(model, name)
    raise AttributeError(f"module 'clearq.sdk' has no attribute {name!r}")
