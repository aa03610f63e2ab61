"""What every handler shares: the store, rendering a page, redirecting after an action."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from clearq.scheduler import Store


def store_of(request: Request) -> Store:
    """The store the application serves."""
    store: Store = request.app.state.store
    return store


def context(request: Request, **values: Any) -> dict[str, Any]:
    """A template's values: the page's own plus the CSRF token and the poll interval."""
    return {"csrf": request.state.csrf, "poll_ms": request.app.state.poll_ms, **values}


def render(request: Request, template: str, *, status: int = 200, **values: Any) -> Response:
    """A page from its template; every value is autoescaped."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, template, context(request, **values), status_code=status
    )


def redirect(path: str) -> Response:
    """Back to a page with a GET after an action (303 See Other)."""
    return RedirectResponse(path, status_code=303)


def task_id_of(request: Request) -> uuid.UUID:
    """The task id in the request's path."""
    task_id: uuid.UUID = request.path_params["task_id"]
    return task_id
