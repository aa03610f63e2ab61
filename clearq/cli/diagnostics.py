"""What the long-running commands show of the library's diagnostics (``logging``).

The library only logs (``clearq.runtime`` and the store log what an agent does and what
goes wrong); a command that runs an agent decides to show it, here, on stderr.
"""

from __future__ import annotations

import logging
import sys


class _AgentVoice(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, each line prefixed with who speaks."""


def show_diagnostics(prefix: str, *, level: int = logging.INFO) -> None:
    """Print clearq's log records at ``level`` and above on stderr as ``prefix: message``."""
    logger = logging.getLogger("clearq")
    if any(isinstance(h, _AgentVoice) for h in logger.handlers):
        return
    handler = _AgentVoice(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
