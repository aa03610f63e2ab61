"""The orchestration web page: workers, queues and tasks, live, from the database.

``clearq ui`` serves it; it reads and acts through the scheduler's ``Store`` only.
"""

from __future__ import annotations

from clearq.ui.app import create_app
from clearq.ui.security import check_bind, is_loopback
from clearq.ui.server import DEFAULT_HOST, DEFAULT_PORT, serve

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "check_bind", "create_app", "is_loopback", "serve"]
