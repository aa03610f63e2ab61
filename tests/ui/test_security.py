"""The page's security rules, over real HTTP: bind, token, host, cross-site POSTs, escaping."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.ui.security import SESSION_COOKIE, TOKEN_COOKIE
from tests.acceptance.conftest import Cli
from tests.ui.helpers import InProcessUi, Reply, fetch

TOKEN = "a-test-token-0123456789abcdef"


@pytest.fixture
def store(sqlite_url: str, settings: Settings) -> Iterator[Store]:
    """These rules do not depend on the database: SQLite alone."""
    with Store(sqlite_url, settings=settings) as s:
        yield s


@pytest.fixture
def queued(store: Store) -> uuid.UUID:
    store.queues.create("q")
    task_id = store.tasks.create(TaskSpec(project="p", name="t")).id
    store.queues.enqueue(task_id, "q")
    return task_id


def _cookie(reply: Reply, name: str) -> str:
    for header in reply.cookies:
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {reply.cookies}")


def _csrf(reply: Reply) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_a_bind_beyond_this_machine_needs_a_token(sqlite_url: str, tmp_path: Path) -> None:
    cli = Cli.for_database(sqlite_url, tmp_path / "home")
    for host in ("0.0.0.0", "192.0.2.7", "::"):
        error = cli.fails("ui", "--host", host)
        assert "--token or CLEARQ_UI_TOKEN, or bind to 127.0.0.1" in error
    assert "at least 16 characters" in cli.fails("ui", "--token", "short")
    from_env = Cli(env={**cli.env, "CLEARQ_UI_TOKEN": "short"})
    assert "at least 16 characters" in from_env.fails("ui", "--host", "0.0.0.0")


def test_every_request_needs_the_token(store: Store) -> None:
    with InProcessUi(store, token=TOKEN) as ui:
        for path in ("/workers", "/api/queues", "/static/app.js", "/tasks"):
            assert fetch("GET", ui.url + path).status == 401, path
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert fetch("GET", ui.url + "/workers", headers=wrong).status == 403
        assert fetch("GET", ui.url + "/workers?token=nope").status == 403
        bad_cookie = {"Cookie": f"{TOKEN_COOKIE}=forged"}
        assert fetch("GET", ui.url + "/workers", headers=bad_cookie).status == 403
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert fetch("GET", ui.url + "/workers", headers=good).status == 200

        # Opened once with ?token=, the page drops it from the address and sets a cookie.
        entry = fetch("GET", ui.url + f"/tasks?status=queued&token={TOKEN}")
        assert entry.status == 303
        assert entry.headers["location"] == "/tasks?status=queued"
        cookie = next(c for c in entry.cookies if c.startswith(TOKEN_COOKIE))
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert TOKEN not in cookie
        with_cookie = {"Cookie": f"{TOKEN_COOKIE}={_cookie(entry, TOKEN_COOKIE)}"}
        assert fetch("GET", ui.url + "/tasks", headers=with_cookie).status == 200


def test_without_a_token_only_loopback_host_names_are_served(store: Store) -> None:
    with InProcessUi(store) as ui:
        port = ui.url.rsplit(":", 1)[1]
        assert fetch("GET", ui.url + "/workers").status == 200
        for host in (f"localhost:{port}", f"[::1]:{port}"):
            assert fetch("GET", ui.url + "/workers", headers={"Host": host}).status == 200
        rebound = fetch("GET", ui.url + "/workers", headers={"Host": f"evil.example:{port}"})
        assert rebound.status == 400


def test_cross_site_posts_are_refused(store: Store, queued: uuid.UUID) -> None:
    with InProcessUi(store) as ui:
        page = fetch("GET", ui.url + "/queue?name=q")
        session = _cookie(page, SESSION_COOKIE)
        assert "HttpOnly" in page.cookies[0]
        assert "SameSite=strict" in page.cookies[0]
        form = f"name=q&action=remove&task={queued}"
        base = {
            "Cookie": f"{SESSION_COOKIE}={session}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        attempts = [
            {**base, "Origin": "http://evil.example"},  # another site, right token
            {**base, "Referer": "http://evil.example/page"},  # no Origin, foreign Referer
            base,  # neither Origin nor Referer
        ]
        for headers in attempts:
            reply = fetch(
                "POST",
                ui.url + "/queue/entries",
                headers=headers,
                body=f"{form}&csrf={_csrf(page)}",
            )
            assert reply.status == 403, headers
        own = {**base, "Origin": ui.url}
        for csrf in ("", "&csrf=0123abcd", f"&csrf={_csrf(page)}x"):
            assert (
                fetch("POST", ui.url + "/queue/entries", headers=own, body=form + csrf).status
                == 403
            )
        assert store.tasks.get(queued).status is TaskStatus.QUEUED

        done = fetch(
            "POST", ui.url + "/queue/entries", headers=own, body=f"{form}&csrf={_csrf(page)}"
        )
        assert done.status == 303
        assert store.tasks.get(queued).status is TaskStatus.CREATED


def test_user_strings_are_escaped_and_scripts_limited_to_the_ui(store: Store) -> None:
    name = "<script>alert('x')</script>"
    store.queues.create("q")
    task_id = store.tasks.create(TaskSpec(project=name, name=name, tags=(name,))).id
    store.queues.enqueue(task_id, "q")
    with InProcessUi(store) as ui:
        for path in (f"/tasks/{task_id}", "/tasks", "/queue?name=q", f"/tasks?project={name}"):
            reply = fetch(
                "GET", ui.url + path.replace("<", "%3C").replace(">", "%3E").replace("'", "%27")
            )
            assert reply.status == 200, path
            assert "<script>alert" not in reply.body, path
            assert "&lt;script&gt;alert(" in reply.body, path
            csp = dict(
                d.strip().split(" ", 1) for d in reply.headers["content-security-policy"].split(";")
            )
            assert csp["script-src"] == "'self'"
            assert csp["style-src"] == "'self'"
            # Only the plot pages let plotly.js set style attributes; nothing else is inline.
            unsafe = {k for k, v in csp.items() if "unsafe-inline" in v}
            assert unsafe == ({"style-src-attr"} if path.startswith("/tasks/") else set())
            assert reply.headers["x-frame-options"] == "DENY"
        data = fetch("GET", ui.url + "/api/tasks")
        assert data.headers["content-type"] == "application/json"
        assert data.headers["x-content-type-options"] == "nosniff"


def test_a_refused_action_says_why(store: Store, queued: uuid.UUID) -> None:
    with InProcessUi(store) as ui:
        page = fetch("GET", ui.url + f"/tasks/{queued}")
        headers = {
            "Cookie": f"{SESSION_COOKIE}={_cookie(page, SESSION_COOKIE)}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": ui.url,
        }
        reply = fetch(
            "POST", ui.url + f"/tasks/{queued}/reset", headers=headers, body=f"csrf={_csrf(page)}"
        )
        assert reply.status == 409
        assert "is queued" in reply.body
        missing = fetch("GET", ui.url + f"/tasks/{uuid.uuid4()}")
        assert missing.status == 404
