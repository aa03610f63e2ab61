"""Serving the page: uvicorn on one address, after the bind is checked."""

from __future__ import annotations

import uvicorn

from clearq.scheduler import Store
from clearq.ui.app import create_app
from clearq.ui.security import check_bind

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def serve(
    store: Store, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None
) -> None:
    """Serve the UI until interrupted; ConfigError for a bind beyond this machine without
    a token."""
    check_bind(host, token)
    app = create_app(store, token=token)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
