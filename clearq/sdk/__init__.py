"""What a training script touches: ``Task``, ``Logger`` and their parameters.

No process management here: the agent (``clearq.runtime``) runs tasks; the SDK captures
them and reports from inside them.
"""

from clearq.sdk.logger import Logger
from clearq.sdk.task import Task

__all__ = ["Logger", "Task"]
