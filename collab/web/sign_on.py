"""Signing in through one's own trust (OpenID Connect, collab.oidc).

``GET /login/oidc/{name}`` begins: the sign-in's state, nonce and PKCE verifier are kept in the
database under the state's hash, bound to this browser by a random cookie, and the browser goes
to the provider. ``GET /login/oidc/{name}/callback`` ends: the state is taken (once: a replay
finds nothing), the code is exchanged with the verifier, the ID token checked, and the person
is found by their provider identity (issuer and subject) or created, with the trust and role
the site's settings give their groups, then updated on every sign-in. Local accounts are never
matched by name: a provider cannot sign anyone in as an existing local account.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from collab.domain import User
from collab.oidc import Discovery, OidcProvider, SignOnRefused, authorization_url, end_session_url, exchange
from collab.security import new_token, sign, unsign
from collab.store import Database, StoreError
from collab.store.people import NO_PASSWORD
from collab.store.sign_on import FLOW_LIFETIME, Flow
from collab.web.auth import client_address, secure_cookies, start_session
from collab.web.render import render

BROWSER_COOKIE = "collab_sign_on"
# Which provider signed this browser's session in, and its ID token (for signing out there).
PROVIDER_COOKIE = "collab_sign_on_provider"
# Browsers drop a cookie past 4096 bytes without a word, and an ID token naming hundreds of
# groups (Entra ID) is longer: then only the provider's name is kept, and sign-out names the
# application by its client id instead of sending the token.
MAX_PROVIDER_COOKIE = 3800
_NOT_USERNAME = re.compile(r"[^A-Za-z0-9._-]+")


def _discovery(request: Request) -> Discovery:
    state = request.app.state
    if not hasattr(state, "oidc_discovery"):
        state.oidc_discovery = Discovery()
    found: Discovery = state.oidc_discovery
    return found


def _provider(request: Request) -> OidcProvider | None:
    found: OidcProvider | None = request.app.state.settings.integrations.oidc_named(
        request.path_params["name"]
    )
    return found


def _callback_url(request: Request, provider: OidcProvider) -> str:
    return str(request.url_for("sign_on_callback", name=provider.name))


def refused(request: Request, message: str, provider: OidcProvider | None, status: int = 403) -> Response:
    """The page a person the sign-in cannot admit sees: what happened and whom to ask."""
    return render(
        request, "sign_on_refused.html", status=status, code=status, message=message, provider=provider
    )


async def begin(request: Request) -> Response:
    """``GET /login/oidc/{name}?next=/cases/…``: off to the trust's sign-in page."""
    provider = _provider(request)
    if provider is None:
        return refused(request, "There is no such sign-in here.", None, 404)
    try:
        meta, _ = await asyncio.to_thread(_discovery(request).metadata, provider)
    except SignOnRefused as exc:
        return refused(request, str(exc), provider, 503)
    url, state, nonce, verifier = authorization_url(provider, meta, _callback_url(request, provider))
    browser = new_token()
    next_path = request.query_params.get("next", "/")
    db: Database = request.app.state.db
    if not await db.sign_on.begin(state, browser, Flow(provider.name, nonce, verifier, next_path)):
        return refused(request, "Too many sign-ins are under way. Try again in a few minutes.", provider, 503)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=int(FLOW_LIFETIME.total_seconds()),
        path="/login/oidc/",
        httponly=True,
        # The provider sends the browser back with a top-level GET: Lax cookies go with it.
        samesite="lax",
        secure=secure_cookies(request),
    )
    return response


async def callback(request: Request) -> Response:
    """``GET /login/oidc/{name}/callback?code=…&state=…``: who they are, then in."""
    provider = _provider(request)
    if provider is None:
        return refused(request, "There is no such sign-in here.", None, 404)
    db: Database = request.app.state.db
    client = client_address(request)
    params = request.query_params
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        await db.audit.record("login failed", client=client, detail=f"{provider.label}: {reason[:200]}")
        return refused(request, f"{provider.label} did not sign you in: {reason[:200]}", provider)
    flow = await db.sign_on.take(params.get("state", ""), request.cookies.get(BROWSER_COOKIE, ""))
    if flow is None or flow.provider != provider.name:
        await db.audit.record(
            "login failed", client=client, detail=f"{provider.label}: unknown or used sign-in"
        )
        return refused(
            request,
            "This sign-in has already been used, has expired, or was begun in another browser. Start again.",
            provider,
            400,
        )
    try:
        claims, id_token = await asyncio.to_thread(
            exchange,
            provider,
            _discovery(request),
            code=params.get("code", ""),
            verifier=flow.verifier,
            nonce=flow.nonce,
            redirect_uri=_callback_url(request, provider),
        )
        user = await _person(db, provider, claims)
    except SignOnRefused as exc:
        await db.audit.record("login failed", client=client, detail=f"{provider.label}: {exc}")
        return refused(
            request, f"{provider.label} signed you in, but collab cannot admit you: {exc}.", provider
        )
    response = await start_session(request, user, flow.next, detail=f"through {provider.label}")
    response.delete_cookie(BROWSER_COOKIE, path="/login/oidc/")
    kept = sign(request.app.state.secret, f"{provider.name} {id_token}")
    if len(kept) > MAX_PROVIDER_COOKIE:
        kept = sign(request.app.state.secret, f"{provider.name} ")
    response.set_cookie(
        PROVIDER_COOKIE,
        kept,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    return response


async def _person(db: Database, provider: OidcProvider, claims: dict[str, Any]) -> User:
    """The collab user for these claims: found by provider identity, else made; brought up to
    date (name, trust, role) either way."""
    org_name = provider.trust(claims)
    role, specialty = provider.role(claims)
    org = await db.catalog.org_by_name(org_name) or await db.catalog.add_org(org_name)
    name = str(claims.get(provider.name_claim) or claims.get("email") or claims["sub"])[:100]
    user_id = await db.sign_on.user_id(provider.issuer, str(claims["sub"]))
    if user_id is None:
        user = await _new_user(
            db, provider, claims, display_name=name, org_id=org.id, role=role, specialty=specialty
        )
        await db.sign_on.link(provider.issuer, str(claims["sub"]), user.id)
        await db.audit.record(
            "user created", user=user, detail=f"user {user.id}, on first sign-in through {provider.label}"
        )
        return user
    row = await db.one("SELECT deactivated FROM users WHERE id = ?", (user_id,))
    if row is None or row["deactivated"]:
        raise SignOnRefused("your collab account has been deactivated")
    await db.write(
        "UPDATE users SET display_name = ?, org_id = ?, role = ?, specialty = ? WHERE id = ?",
        (name, org.id, role, specialty, user_id),
    )
    found = await db.people.user(user_id)
    assert found is not None
    return found


async def _new_user(db: Database, provider: OidcProvider, claims: dict[str, Any], **details: Any) -> User:
    """A new account named after the person's username at their trust (its part before any @),
    with the provider's name added, then a number, if that name is taken."""
    wanted = str(claims.get(provider.username_claim) or claims.get("email") or claims["sub"])
    base = _NOT_USERNAME.sub("-", wanted.split("@")[0]).strip("-._")[:60] or "user"
    for candidate in (base, f"{base}.{provider.name}", *(f"{base}.{provider.name}{n}" for n in range(2, 50))):
        try:
            return await db.people.add_user(candidate, password_hash=NO_PASSWORD, **details)
        except StoreError:
            continue
    raise SignOnRefused("no username could be made for you; ask your administrator")


async def provider_sign_out(request: Request) -> str | None:
    """Where to send a browser signing out so its trust's session ends too (None: nowhere)."""
    signed = request.cookies.get(PROVIDER_COOKIE, "")
    value = unsign(request.app.state.secret, signed) if signed else None
    if not value:
        return None
    name, _, id_token = value.partition(" ")
    provider = request.app.state.settings.integrations.oidc_named(name)
    if provider is None:
        return None
    try:
        meta, _ = await asyncio.to_thread(_discovery(request).metadata, provider)
    except SignOnRefused:
        return None  # the local session has ended; the provider's cannot be reached now
    return end_session_url(provider, meta, id_token or None, str(request.url_for("login_page")))


def forget_provider(response: Response) -> None:
    """Signed out, or signed in another way: the browser keeps nothing of the provider's sign-in
    (its ID token names the person and their groups; a shared computer's next user must not be
    sent to sign out at a provider they never used)."""
    response.delete_cookie(PROVIDER_COOKIE)


routes = [
    Route("/login/oidc/{name}", begin),
    Route("/login/oidc/{name}/callback", callback, name="sign_on_callback"),
]
