"""One's own account: password and API tokens (page and JSON twins), and the invitation page
where a new person sets their first password and is signed in."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from collab.security import MIN_PASSWORD_LENGTH, new_token, sign, token_hash, verify_password
from collab.store.accounts import MAX_TOKEN_DAYS, TOKEN_SCOPES, Accounts, password_problem, token_expiry
from collab.store.database import StoreError
from collab.store.people import ApiToken
from collab.web.admin_users import end_links
from collab.web.api import describe, read_json
from collab.web.auth import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    checked_form,
    client_address,
    current_user,
    make_password_hash,
)
from collab.web.errors import error, problem
from collab.web.forms import MAX_PUBLIC_FORM_BYTES, read_form
from collab.web.render import render


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "scope": token.scope or "full",
        "created": token.created,
        "last_used": token.last_used,
        "expires": token.expires,
        "revoked": token.revoked,
    }


async def change_password(request: Request, current: str, new: str, again: str) -> None:
    """Check the current password, then set the new one; other sessions end. StoreError if refused."""
    user = current_user(request)
    if new != again:
        raise StoreError("The two new passwords differ. Type the same one twice.")
    if problem_text := password_problem(new):
        raise StoreError(problem_text)
    accounts = Accounts(request.app.state.db)
    if not await run_in_threadpool(
        verify_password, await accounts.current_password_hash(user.id), current[:1000]
    ):
        raise StoreError("Your current password is not right.")
    sessions = await accounts.set_password(
        user.id, await make_password_hash(new), keep_session=request.scope.get("session")
    )
    await end_links(request, user.id, sessions)
    await request.app.state.db.audit.record("password changed", user=user, client=client_address(request))


async def make_token(request: Request, scope: str, days: int | None) -> tuple[str, int]:
    """A new token of one's own (shown once); StoreError if the scope or days are wrong."""
    if scope not in TOKEN_SCOPES:
        raise StoreError(f"The scope must be one of: {', '.join(TOKEN_SCOPES)}.")
    expires = token_expiry(days)
    user = current_user(request)
    token = new_token()
    token_id = await request.app.state.db.people.add_token(
        user.id, token_hash(token), scope=scope, expires=expires
    )
    await request.app.state.db.audit.record(
        "token created", user=user, client=client_address(request), detail=f"token {token_id}, {scope}"
    )
    return token, token_id


async def revoke_token(request: Request, token_id: int) -> bool:
    user = current_user(request)
    if not await request.app.state.db.people.revoke_token(user.id, token_id):
        return False
    await request.app.state.db.audit.record(
        "token revoked", user=user, client=client_address(request), detail=f"token {token_id}"
    )
    await request.app.state.live.recheck()  # its open websockets close
    return True


# -- the page -----------------------------------------------------------------


async def _page(request: Request, *, status: int = 200, **context: Any) -> Response:
    tokens = await request.app.state.db.people.tokens(current_user(request).id)
    return render(
        request,
        "account.html",
        status=status,
        tokens=[token_json(t) for t in reversed(tokens)],
        scopes=TOKEN_SCOPES,
        min_password=MIN_PASSWORD_LENGTH,
        max_days=MAX_TOKEN_DAYS,
        **context,
    )


async def account_page(request: Request) -> Response:
    """``GET /account``"""
    return await _page(request)


async def password_form(request: Request) -> Response:
    """``POST /account/password``"""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await change_password(
            request,
            str(form.get("current", "")),
            str(form.get("new", ""))[:2000],
            str(form.get("again", ""))[:2000],
        )
    except StoreError as exc:
        return await _page(request, status=422, password_message=str(exc))
    return await _page(request, notice="Your password has been changed. Other sign-ins have ended.")


async def token_form(request: Request) -> Response:
    """``POST /account/tokens``: the new token is shown on the answer, once."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    raw_days = str(form.get("days", "")).strip()
    try:
        days = int(raw_days) if raw_days else None
        token, _ = await make_token(request, str(form.get("scope", "")), days)
    except ValueError:
        return await _page(request, status=422, token_message="Days must be a whole number, or left empty.")
    except StoreError as exc:
        return await _page(request, status=422, token_message=str(exc))
    return await _page(request, new_token=token)


async def token_revoke_form(request: Request) -> Response:
    """``POST /account/tokens/{token_id}/revoke``"""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    if not await revoke_token(request, request.path_params["token_id"]):
        return error(404, "You have no such token in force.", request)
    return RedirectResponse("/account", status_code=303)


# -- the invitation -------------------------------------------------------------

INVALID_INVITE = "This invitation link has expired or has been used. Ask your administrator for a new one."


async def invite_page(request: Request) -> Response:
    """``GET /invite/{token}``: the form to choose a password (changes nothing)."""
    user = await Accounts(request.app.state.db).invited(token_hash(request.path_params["token"][:100]))
    if user is None:
        return render(request, "invite.html", status=410, message=INVALID_INVITE, user=None)
    return render(
        request, "invite.html", invitee=user, min_password=MIN_PASSWORD_LENGTH, user=None, session_csrf=None
    )


async def invite_accept(request: Request) -> Response:
    """``POST /invite/{token}``: set the password, use the invitation up, and sign in.

    No CSRF token: the secret in the address is one (another site cannot know it)."""
    form = await read_form(request, MAX_PUBLIC_FORM_BYTES)
    if isinstance(form, Response):
        return form
    accounts = Accounts(request.app.state.db)
    hashed = token_hash(request.path_params["token"][:100])
    invitee = await accounts.invited(hashed)
    if invitee is None:
        return render(request, "invite.html", status=410, message=INVALID_INVITE, user=None)
    new, again = str(form.get("new", ""))[:2000], str(form.get("again", ""))[:2000]
    refusal = "The two passwords differ. Type the same one twice." if new != again else password_problem(new)
    if refusal:
        return render(
            request,
            "invite.html",
            status=422,
            invitee=invitee,
            message=refusal,
            min_password=MIN_PASSWORD_LENGTH,
            user=None,
            session_csrf=None,
        )
    user = await accounts.accept_invite(hashed, await make_password_hash(new))
    if user is None:  # used or ended meanwhile
        return render(request, "invite.html", status=410, message=INVALID_INVITE, user=None)
    db = request.app.state.db
    session_id, csrf = new_token(), new_token()
    await db.people.add_session(user.id, token_hash(session_id), csrf, SESSION_LIFETIME)
    await db.audit.record("invite accepted", user=user, client=client_address(request))
    await db.audit.record("login", user=user, client=client_address(request))
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign(request.app.state.secret, session_id),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


# -- JSON twins -----------------------------------------------------------------


async def password_json(request: Request) -> Response:
    """``POST /api/account/password``"""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    fields = [body.get(k) for k in ("current", "new", "again")]
    if not all(isinstance(f, str) for f in fields):
        return problem(422, "Send current, new and again (the new password twice) as strings.")
    try:
        await change_password(request, *fields)  # type: ignore[arg-type]
    except StoreError as exc:
        return problem(422, str(exc))
    return JSONResponse({"changed": True})


async def tokens_json(request: Request) -> Response:
    """``GET /api/account/tokens``"""
    tokens = await request.app.state.db.people.tokens(current_user(request).id)
    return JSONResponse({"tokens": [token_json(t) for t in tokens]})


async def token_create_json(request: Request) -> Response:
    """``POST /api/account/tokens``"""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    scope, days = body.get("scope"), body.get("expires_days")
    if not isinstance(scope, str) or not (
        days is None or (isinstance(days, int) and not isinstance(days, bool))
    ):
        return problem(422, "Send scope ('read' or 'write') and expires_days (a whole number, or null).")
    try:
        token, token_id = await make_token(request, scope, days)
    except StoreError as exc:
        return problem(422, str(exc))
    [made] = [
        t for t in await request.app.state.db.people.tokens(current_user(request).id) if t.id == token_id
    ]
    return JSONResponse({**token_json(made), "token": token}, status_code=201)


async def token_revoke_json(request: Request) -> Response:
    """``DELETE /api/account/tokens/{token_id}``"""
    if not await revoke_token(request, request.path_params["token_id"]):
        return problem(404, "You have no such token in force.")
    return JSONResponse({"revoked": True})


TOKEN = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "scope": {"enum": [*TOKEN_SCOPES, "full"]},
        "created": {"type": "string"},
        "last_used": {"type": ["string", "null"]},
        "expires": {"type": ["string", "null"]},
        "revoked": {"type": ["string", "null"]},
    },
}
describe(
    "/api/account/password",
    "post",
    "Change one's own password (other sessions end)",
    tag="account",
    body={
        "type": "object",
        "required": ["current", "new", "again"],
        "properties": {k: {"type": "string"} for k in ("current", "new", "again")},
    },
    response={"type": "object", "properties": {"changed": {"type": "boolean"}}},
)
describe(
    "/api/account/tokens",
    "get",
    "One's own API tokens (never the secrets)",
    tag="account",
    response={"type": "object", "properties": {"tokens": {"type": "array", "items": TOKEN}}},
)
describe(
    "/api/account/tokens",
    "post",
    "A new API token of one's own, shown once",
    tag="account",
    status=201,
    body={
        "type": "object",
        "required": ["scope"],
        "properties": {
            "scope": {"enum": list(TOKEN_SCOPES)},
            "expires_days": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TOKEN_DAYS},
        },
    },
    response={**TOKEN, "properties": {**TOKEN["properties"], "token": {"type": "string"}}},  # type: ignore[dict-item]
)
describe(
    "/api/account/tokens/{token_id:int}",
    "delete",
    "Revoke one of one's own API tokens",
    tag="account",
    response={"type": "object", "properties": {"revoked": {"type": "boolean"}}},
)

routes = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", password_form, methods=["POST"]),
    Route("/account/tokens", token_form, methods=["POST"]),
    Route("/account/tokens/{token_id:int}/revoke", token_revoke_form, methods=["POST"]),
    Route("/invite/{token:str}", invite_page, methods=["GET"]),
    Route("/invite/{token:str}", invite_accept, methods=["POST"]),
    Route("/api/account/password", password_json, methods=["POST"]),
    Route("/api/account/tokens", tokens_json, methods=["GET"]),
    Route("/api/account/tokens", token_create_json, methods=["POST"]),
    Route("/api/account/tokens/{token_id:int}", token_revoke_json, methods=["DELETE"]),
]
