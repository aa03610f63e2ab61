"""Who may use the page, and how its actions are kept from other sites.

- **Bind** — 127.0.0.1 by default; any other address needs an operator's token
  (:func:`check_bind`), at least ``MIN_TOKEN_LENGTH`` characters.
- **Token** — when set, every request (pages, data, static files) must carry it: an
  ``Authorization: Bearer`` header, or the cookie the page sets after one visit with
  ``?token=...`` (the token leaves the address bar at once). Missing: 401; wrong: 403.
- **Host** — without a token, only loopback names are accepted in ``Host``, so a DNS
  rebinding page cannot reach the UI through a name of its own.
- **Cross-site requests** — actions are POSTs whose ``Origin`` (or else ``Referer``)
  must be the page's own, with a form field that is an HMAC of the session cookie;
  cookies are ``HttpOnly`` and ``SameSite=Strict``.
- **Content** — a Content-Security-Policy allows scripts and styles from the UI only
  (no inline script), media and frames from the UI only, and no one to frame the page;
  templates autoescape every value. Pages that draw plots also allow style attributes
  (``PLOT_PAGE_CSP``), which plotly.js sets. Debug samples have their own stricter rules
  (``results``): sandboxed, typed by extension, never HTML in the page's origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import URL
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from clearq.errors import ConfigError

MIN_TOKEN_LENGTH = 16
TOKEN_COOKIE = "clearq_ui_auth"  # noqa: S105 (a cookie's name, not a secret)
SESSION_COOKIE = "clearq_ui_session"
CSRF_FIELD = "csrf"
TOKEN_QUERY = "token"  # noqa: S105 (a parameter's name, not a secret)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; frame-src 'self'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
PLOT_PAGE_CSP = SECURITY_HEADERS["Content-Security-Policy"] + "; style-src-attr 'unsafe-inline'"
"""For the pages that draw plots: plotly.js sets a few style attributes (a heat map's
pixelated image, colour bars) that ``style-src 'self'`` refuses. Style elements, style
sheets from elsewhere and every script rule stay as strict as on every other page."""
_NO_STORE = {"Cache-Control": "no-store"}
"""For pages and data, never for the static files."""


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine reaches."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token, or with a guessable one."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the UI token must be at least {MIN_TOKEN_LENGTH} characters: "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'` makes one"
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"binding to {host} would let anyone on the network act on your tasks: give a "
            "token with --token or CLEARQ_UI_TOKEN, or bind to 127.0.0.1"
        )


def _digest(token: str) -> str:
    return hashlib.sha256(f"clearq-ui:{token}".encode()).hexdigest()


@dataclass(frozen=True)
class Guard:
    """The page's secrets: the operator's token (if any) and this process's CSRF key."""

    token: str | None = None
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def csrf_for(self, session: str) -> str:
        """The form token that proves a POST came from a page of this session."""
        return hmac.new(self.key, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, given: str | None) -> bool:
        """True when ``given`` is this session's form token."""
        if not session or not given:
            return False
        return hmac.compare_digest(self.csrf_for(session), given)

    def token_state(self, request: Request) -> str:
        """``ok``, ``missing`` or ``wrong`` for the request's credentials."""
        if self.token is None:
            return "ok"
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return _verdict(hmac.compare_digest(header[7:].encode(), self.token.encode()))
        query = request.query_params.get(TOKEN_QUERY)
        if query is not None:
            return _verdict(hmac.compare_digest(query.encode(), self.token.encode()))
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie is not None:
            return _verdict(hmac.compare_digest(cookie, _digest(self.token)))
        return "missing"


def _verdict(match: bool) -> str:
    return "ok" if match else "wrong"


def same_origin(request: Request) -> bool:
    """True when the request's Origin (or else Referer) is the page's own origin."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if referer is None:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == own


class SecurityMiddleware(BaseHTTPMiddleware):
    """Checks the host, the token and the origin of every request; sets the headers."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return _secured(request, refused)
        session = request.cookies.get(SESSION_COOKIE)
        fresh = not session
        request.state.session = session or secrets.token_urlsafe(24)
        request.state.csrf = self.guard.csrf_for(request.state.session)
        if self.guard.token is not None and TOKEN_QUERY in request.query_params:
            response: Response = RedirectResponse(_without_token(request.url), status_code=303)
            _set_cookie(response, TOKEN_COOKIE, _digest(self.guard.token))
        else:
            response = await call_next(request)
        if fresh:
            _set_cookie(response, SESSION_COOKIE, request.state.session)
        return _secured(request, response)

    def _refusal(self, request: Request) -> Response | None:
        if self.guard.token is None and not is_loopback(_host_name(request)):
            return PlainTextResponse("unexpected Host header: open the UI as 127.0.0.1", 400)
        state = self.guard.token_state(request)
        if state == "missing":
            return PlainTextResponse(
                "this clearq UI needs its token: open it once as /?token=YOUR_TOKEN", 401
            )
        if state == "wrong":
            return PlainTextResponse("wrong token", 403)
        if request.method not in _SAFE_METHODS and not same_origin(request):
            return PlainTextResponse("cross-site request refused", 403)
        return None


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _without_token(url: URL) -> str:
    kept = url.remove_query_params(TOKEN_QUERY)
    return f"{kept.path}?{kept.query}" if kept.query else kept.path


def _set_cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/")


def _secured(request: Request, response: Response) -> Response:
    headers = dict(SECURITY_HEADERS)
    if not request.url.path.startswith("/static/"):
        headers.update(_NO_STORE)
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response
