"""Who is asking: session cookies, bearer tokens, sign-in and sign-out, CSRF, throttling."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from collab.domain import User
from collab.security import hash_password, new_token, sign, token_hash, unsign, verify_password
from collab.store import Database
from collab.throttle import FailureWindows
from collab.web.errors import error
from collab.web.forms import MAX_FORM_BYTES, MAX_PUBLIC_FORM_BYTES, read_form
from collab.web.render import render

SESSION_COOKIE = "collab_session"
LOGIN_CSRF_COOKIE = "collab_login_csrf"
SESSION_LIFETIME = timedelta(hours=12)
# Failed sign-ins allowed per username and per client address within the window.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
# Looking a session up for every tile would cost a database round trip each. (API tokens are
# looked up on every request instead: see Identities.resolve.)
IDENTITY_CACHE_S = 30.0
# Teaching sessions answer their educator and their participants (guests with a cookie of
# their own, no account): collab.web.classroom decides who those are, and refuses everyone else.
# The API's description is public: the code it describes is.
# An invitation's link is its own credential (collab.web.account).
# /readyz is for load balancers; /metrics decides itself (a scraper's token is no account's).
PUBLIC_PATHS = frozenset({"/login", "/readyz", "/metrics"})
PUBLIC_PREFIXES = (
    "/login",
    "/healthz",
    "/static/",
    "/join",
    "/teach/",
    "/ws/teaching/",
    "/api/openapi.json",
    "/invite/",
)
# What an API token of the "read" scope may send.
READ_METHODS = ("GET", "HEAD", "OPTIONS")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what new_token() makes


class LoginThrottle:
    """Counts recent failed sign-ins by username and by client address, in bounded memory
    (collab.throttle.MAX_KEYS of each: a spray of usernames cannot evict an address)."""

    def __init__(self) -> None:
        self._users = FailureWindows(MAX_FAILURES, FAILURE_WINDOW_S)
        self._addresses = FailureWindows(MAX_FAILURES, FAILURE_WINDOW_S)

    def __len__(self) -> int:
        return len(self._users) + len(self._addresses)

    def blocked_for(self, username: str, client: str) -> int:
        """Seconds until another attempt is allowed (0: now)."""
        return max(self._users.wait(username.lower()), self._addresses.wait(client))

    def failed(self, username: str, client: str) -> None:
        self._users.failed(username.lower())
        self._addresses.failed(client)

    def succeeded(self, username: str) -> None:
        self._users.forget(username.lower())

    def locked_for(self, username: str) -> int:
        """Seconds until this username may try again from anywhere (0: not locked)."""
        return self._users.wait(username.lower())

    def unlock(self, username: str) -> None:
        """An administrator lets the person try again now (their addresses stay counted)."""
        self._users.forget(username.lower())


class Identities:
    """Resolves cookies and tokens to users, remembering answers briefly."""

    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret
        self._cache: dict[str, tuple[float, User | None, str | None]] = {}

    async def resolve(self, headers: Headers) -> tuple[User | None, str | None, str | None, str | None]:
        """(user, csrf token, session id hash, token scope) for a request's headers; the scope is
        an API token's ("read", "write", or None for full rights)."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            # Not cached: a token revoked on the command line, another process, stops working
            # at once. One read by a unique index per request; the last use is written at most
            # once a minute (collab.store.people.LAST_USE_RESOLUTION).
            grant = await self.db.people.token_grant(token_hash(auth[7:].strip()))
            return (grant[0], None, None, grant[1]) if grant else (None, None, None, None)
        cookie = _cookie(headers, SESSION_COOKIE)

        session_id = unsign(self.secret, cookie) if cookie else None
        if session_id is None:
            return None, None, None, None
        id_hash = token_hash(session_id)
        user, csrf = await self._cached("session:" + id_hash, self._session_user)
        return user, csrf, id_hash, None

    async def _cached(self, key: str, load: Any) -> tuple[User | None, str | None]:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1], hit[2]
        user, csrf = await load(key.split(":", 1)[1])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + IDENTITY_CACHE_S, user, csrf)
        return user, csrf

    async def _session_user(self, id_hash: str) -> tuple[User | None, str | None]:
        found = await self.db.people.session(id_hash)
        return (found[0], found[1]) if found else (None, None)

    def forget_session(self, id_hash: str) -> None:
        self._cache.pop("session:" + id_hash, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached session of a person (deactivated: their next request is refused)."""
        for key, (_, user, _csrf) in list(self._cache.items()):
            if user is not None and user.id == user_id:
                self._cache.pop(key, None)


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class AuthMiddleware:
    """Puts the signed-in user (or None) in ``scope["user"]``; turns strangers away.

    Everything but the sign-in page, the health check and static files needs a
    user: pages redirect to the sign-in form, everything else answers 401.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" and not _same_origin(Headers(scope=scope)):
            # Cross-site websocket hijacking: a page on another site opening our websocket
            # with the visitor's cookies. SameSite=Lax cookies already stay home in today's
            # browsers; this holds for older ones too. Tools send no Origin and pass.
            await send({"type": "websocket.close", "code": 4403, "reason": "cross-site connection refused"})
            return
        # Made by the app's lifespan, which has run before any request arrives.
        identities: Identities = scope["app"].state.identities
        user, csrf, session, token_scope = await identities.resolve(Headers(scope=scope))
        scope["user"], scope["csrf"], scope["session"] = user, csrf, session
        scope["token_scope"] = token_scope
        path: str = scope["path"]
        if token_scope == "read" and scope["type"] == "http" and scope["method"] not in READ_METHODS:
            refused = error(403, "This API token may only read: make one with the 'write' scope.", api=True)
            await refused(scope, receive, send)
            return
        if user is None and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401, "reason": "sign in first"})
                return
            wants_page = scope["method"] == "GET" and not path.startswith(("/api/", "/slides/"))
            response: Response
            if wants_page:
                response = RedirectResponse(f"/login?next={_safe_next(path)}", status_code=303)
            else:
                response = error(
                    401, "Sign in first, or send an API token as 'Authorization: Bearer <token>'."
                )
                if path.startswith("/api/"):
                    response = error(401, "Sign in first, or send an API token.", api=True)
                response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _same_origin(headers: Headers) -> bool:
    """No Origin (not a browser), or an Origin naming the host the request was sent to."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def _safe_next(path: str) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def current_user(request: Request) -> User:
    """The signed-in user; the middleware has already turned everyone else away."""
    user: User | None = request.scope.get("user")
    assert user is not None
    return user


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def check_csrf(request: Request, form_token: str | None) -> bool:
    """Forms carry the session's CSRF token; bearer-token clients send no cookies to forge."""
    expected = request.scope.get("csrf")
    return bool(expected) and form_token == expected


# -- pages --------------------------------------------------------------------


async def checked_form(request: Request) -> FormData | Response:
    """The posted form if it carries this session's CSRF token, else the 4xx to answer with."""
    form = await read_form(request, MAX_FORM_BYTES)
    if isinstance(form, Response):
        return form
    if not await check_csrf(request, str(form.get("csrf", ""))):
        return error(403, "The form expired. Reload the page and try again.")
    return form


async def login_page(request: Request) -> Response:
    """``GET /login``: the sign-in form."""
    # Keep the token a browser already holds: a second load of this page (another tab, or the
    # browser's own /favicon.ico request redirected here) must not void the form on screen.
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _TOKEN.fullmatch(csrf):
        csrf = new_token()
    response = render(
        request, "login.html", csrf=csrf, next=_safe_next(request.query_params.get("next", "/")),
        providers=request.app.state.settings.integrations.oidc,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="lax", secure=secure_cookies(request)
    )
    return response


async def login(request: Request) -> Response:
    """``POST /login``: check the password, start a session, go to the worklist."""
    db: Database = request.app.state.db
    throttle: LoginThrottle = request.app.state.login_throttle
    form = await read_form(request, MAX_PUBLIC_FORM_BYTES)
    if isinstance(form, Response):
        return form
    username = str(form.get("username", "")).strip()[:200]
    password = str(form.get("password", ""))[:1000]
    next_path = _safe_next(str(form.get("next", "/")))
    client = client_address(request)
    login_csrf = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not login_csrf or form.get("csrf") != login_csrf:
        return error(403, "The sign-in form expired. Reload the page and try again.")
    wait = throttle.blocked_for(username, client)
    response: Response
    if wait:
        response = render(
            request,
            "login.html",
            providers=request.app.state.settings.integrations.oidc,
            status=429,
            csrf=login_csrf,
            next=next_path,
            username=username,
            message=f"Too many failed attempts. Try again in {wait // 60 + 1} minutes.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    found = await db.people.password_hash(username)
    ok = await run_in_threadpool(verify_password, found[1] if found else None, password)
    if not ok or found is None:
        throttle.failed(username, client)
        await db.audit.record("login failed", username=username or None, client=client)
        return render(
            request,
            "login.html",
            providers=request.app.state.settings.integrations.oidc,
            status=401,
            csrf=login_csrf,
            next=next_path,
            username=username,
            message="That username and password do not match.",
        )
    throttle.succeeded(username)
    response = await start_session(request, found[0], next_path)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    from collab.web.sign_on import forget_provider

    forget_provider(response)
    return response


async def start_session(
    request: Request, user: User, next_path: str, *, detail: str | None = None
) -> Response:
    """A new session for ``user`` (signed in by password or by their trust), then ``next_path``."""
    db: Database = request.app.state.db
    session_id, csrf = new_token(), new_token()
    await db.people.add_session(user.id, token_hash(session_id), csrf, SESSION_LIFETIME)
    await db.audit.record("login", user=user, client=client_address(request), detail=detail)
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign(request.app.state.secret, session_id),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    return response


async def logout(request: Request) -> Response:
    """``POST /logout``: end the session."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    db: Database = request.app.state.db
    session = request.scope.get("session")
    if session:
        await db.people.end_session(session)
        request.app.state.identities.forget_session(session)
        request.app.state.live.end_session(session)  # its open websockets and streams close now
    await db.audit.record("logout", user=current_user(request), client=client_address(request))
    from collab.web.sign_on import forget_provider, provider_sign_out

    # Signed in by their trust: the trust's own session ends too, where the provider can.
    response = RedirectResponse(await provider_sign_out(request) or "/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    forget_provider(response)
    return response


def secure_cookies(request: Request) -> bool:
    """Cookies are marked Secure when the site is reached over https (directly or via a proxy)."""
    return request.url.scheme == "https"


async def make_password_hash(password: str) -> str:
    """Hash off the event loop."""
    return await run_in_threadpool(hash_password, password)


routes = [
    Route("/login", login_page, methods=["GET"], name="login_page"),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
