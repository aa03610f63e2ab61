"""The Starlette application: routes, templates, static files, errors, security."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from clearq.errors import ClearqError, InvalidInput, NotFound
from clearq.scheduler import Store
from clearq.ui import actions, api, compare, pages, results
from clearq.ui.security import Guard, SecurityMiddleware
from clearq.ui.web import render

POLL_SECONDS = 2.0
"""How often a page asks for fresh figures."""
MAX_FORM_BYTES = 1024 * 1024


def _package_dir(name: str) -> Path:
    return Path(str(files("clearq.ui").joinpath(name)))


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_package_dir("templates")),
        autoescape=True,  # every value is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=env)


def _routes() -> list[BaseRoute]:
    return [
        Route("/", pages.home),
        Route("/workers", pages.workers),
        Route("/queues", pages.queues),
        Route("/queue", pages.queue),
        Route("/schedules", pages.schedules),
        Route("/tasks", pages.tasks),
        Route("/compare", compare.compare_page),
        Route("/api/compare/scalars", compare.compare_charts),
        Route("/tasks/{task_id:uuid}", pages.task),
        Route("/api/workers", api.workers),
        Route("/api/workers/charts", api.worker_charts),
        Route("/api/workers/activity", api.activity),
        Route("/api/queues", api.queues),
        Route("/api/queues/charts", api.queue_charts),
        Route("/api/queue/entries", api.entries),
        Route("/api/schedules", api.schedules),
        Route("/api/tasks", api.tasks),
        Route("/api/tasks/{task_id:uuid}/state", api.task_state),
        Route("/api/tasks/{task_id:uuid}/logs", api.logs),
        Route("/api/tasks/{task_id:uuid}/scalars", api.scalars),
        Route("/api/tasks/{task_id:uuid}/summary", api.summary),
        Route("/api/tasks/{task_id:uuid}/history", api.history),
        Route("/api/tasks/{task_id:uuid}/plots", results.plots),
        Route("/api/tasks/{task_id:uuid}/plots/{plot_id:int}", results.plot),
        Route("/api/tasks/{task_id:uuid}/samples", results.samples),
        Route("/tasks/{task_id:uuid}/samples/{sample_id:int}", results.sample_file),
        Route("/queue/entries", actions.queue_entries, methods=["POST"]),
        Route("/queue/clear", actions.queue_clear, methods=["POST"]),
        Route("/schedules/remove", actions.schedules_remove, methods=["POST"]),
        Route("/tasks/{task_id:uuid}/{action:str}", actions.task_action, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=_package_dir("static")), name="static"),
    ]


async def _clearq_error(request: Request, exc: Exception) -> Response:
    """A refused action or a missing record: the store's message, which says what to do."""
    status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, InvalidInput) else 409
    if request.url.path.startswith("/api/"):
        return PlainTextResponse(str(exc), status)
    return render(request, "error.html", status=status, title="Refused", message=str(exc))


def create_app(
    store: Store, *, token: str | None = None, poll_seconds: float = POLL_SECONDS
) -> Starlette:
    """The orchestration page over ``store``; with ``token``, every request must carry it."""
    guard = Guard(token=token)
    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(SecurityMiddleware, guard=guard)],
        exception_handlers={ClearqError: _clearq_error},
        max_body_size=MAX_FORM_BYTES,
    )
    app.state.store = store
    app.state.guard = guard
    app.state.templates = _templates()
    app.state.poll_ms = int(poll_seconds * 1000)
    return app
