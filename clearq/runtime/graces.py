"""How long tasks get to end: the defaults the agent, the executor and the CLI's flags share.

Standard library only, so ``clearq agent --help`` can show them without loading the runtime.
"""

from __future__ import annotations

DEFAULT_STOP_GRACE_SECONDS = 10.0
"""Seconds between SIGTERM and SIGKILL when a task is stopped."""
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
"""Seconds running tasks get to end when their agent stops."""
