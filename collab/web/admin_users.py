"""People, for administrators: the list, new accounts (with a password or an invitation),
deactivation that ends every way in at once, reactivation, password resets and sign-in unlocks.

The acts live here once (``create``, ``change``, ``deactivate``, ...); the page's forms and the
JSON twins (collab.web.admin_users_api) both call them, and each is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from collab.domain import ROLES, SPECIALTIES, User
from collab.security import new_token, token_hash
from collab.store import Database
from collab.store.accounts import Account, Accounts, password_problem
from collab.store.database import StoreError
from collab.web.auth import (
    Identities,
    LoginThrottle,
    checked_form,
    client_address,
    current_user,
    make_password_hash,
)
from collab.web.errors import error
from collab.web.live import LiveLinks
from collab.web.render import render

NOT_ADMIN = "Only administrators manage people."


def is_admin(user: User) -> bool:
    return user.role == "admin"


@dataclass(frozen=True)
class Invitation:
    """A link to pass on: shown once, only its hash is kept."""

    url: str
    expires: str


def account_json(account: Account, locked_s: int) -> dict[str, Any]:
    user = account.user
    return {
        "id": user.id,
        "username": user.username,
        "name": user.display_name,
        "role": user.role,
        "organisation": account.organisation,
        "specialty": user.specialty,
        "status": "locked" if locked_s and account.status == "active" else account.status,
        "created": account.created,
        "deactivated": account.deactivated,
        "invite_expires": account.invite_expires,
    }


async def listing(request: Request) -> list[dict[str, Any]]:
    throttle: LoginThrottle = request.app.state.login_throttle
    accounts = await Accounts(request.app.state.db).accounts()
    return [account_json(a, throttle.locked_for(a.user.username)) for a in accounts]


async def org_id(db: Database, name: str) -> int:
    org = await db.catalog.org_by_name(name.strip())
    if org is None:
        raise StoreError(f"There is no organisation called {name.strip()!r}.")
    return org.id


async def _audit(request: Request, event: str, target: int, detail: str = "") -> None:
    await request.app.state.db.audit.record(
        event,
        user=current_user(request),
        client=client_address(request),
        detail=f"user {target}" + (f": {detail}" if detail else ""),
    )


async def end_links(request: Request, user_id: int, sessions: list[str]) -> None:
    """Close what a person had open on sessions that have just been deleted, and re-check every
    live link (a deactivated person's tokens, too), forgetting their cached sessions first."""
    identities: Identities = request.app.state.identities
    live: LiveLinks = request.app.state.live
    identities.forget_user(user_id)
    for id_hash in sessions:
        identities.forget_session(id_hash)
        live.end_session(id_hash)
    await live.recheck()


async def _invite(request: Request, user_id: int) -> Invitation:
    token = new_token()
    expires, sessions = await Accounts(request.app.state.db).invite(
        user_id, token_hash(token), by=current_user(request).id
    )
    await end_links(request, user_id, sessions)
    await _audit(request, "invite issued", user_id, f"expires {expires}")
    return Invitation(f"{request.base_url}invite/{token}", expires)


async def _target(request: Request, user_id: int) -> Account:
    account = await Accounts(request.app.state.db).account(user_id)
    if account is None:
        raise LookupError("There is no such person.")
    return account


async def create(request: Request, fields: dict[str, Any]) -> tuple[Account, Invitation | None]:
    """A new account from ``fields`` (username, name, role, org_id, specialty, and a password or
    ``invite``); StoreError says what is wrong, and nothing is stored then."""
    password = fields.get("password") or None
    if (password is None) == (not fields.get("invite")):
        raise StoreError("Give either an initial password or ask for an invitation link, not both.")
    if password is not None and (problem := password_problem(password)):
        raise StoreError(problem)
    accounts = Accounts(request.app.state.db)
    user = await accounts.create(
        fields["username"],
        display_name=fields.get("name") or fields["username"],
        org_id=fields["org_id"],
        role=fields["role"],
        specialty=fields.get("specialty") or None,
        password_hash=await make_password_hash(password) if password else None,
    )
    await _audit(request, "user created", user.id, f"{user.username}, {user.role}")
    invitation = await _invite(request, user.id) if password is None else None
    account = await accounts.account(user.id)
    assert account is not None
    return account, invitation


async def change(request: Request, user_id: int, fields: dict[str, Any]) -> Account:
    """Change role, organisation, specialty, name; ``active`` deactivates or reactivates."""
    account = await _target(request, user_id)
    me = current_user(request)
    if user_id == me.id and (fields.get("active") is False or fields.get("role", "admin") != "admin"):
        raise StoreError("You cannot deactivate yourself or give up your own administrator role.")
    details = {k: fields[k] for k in ("name", "role", "org_id", "specialty") if k in fields}
    if details:
        await Accounts(request.app.state.db).update(
            user_id,
            display_name=details.get("name"),
            org_id=details.get("org_id"),
            role=details.get("role"),
            specialty=details.get("specialty") or None,
            clear_specialty="specialty" in details and not details["specialty"],
        )
        await _audit(request, "user changed", user_id, ", ".join(sorted(details)))
        await request.app.state.live.recheck()  # a new role or trust may end access to cases
    if fields.get("active") is False:
        await deactivate(request, user_id)
    elif fields.get("active") is True and account.deactivated:
        await reactivate(request, user_id)
    return await _target(request, user_id)


async def deactivate(request: Request, user_id: int) -> None:
    await _target(request, user_id)
    if user_id == current_user(request).id:
        raise StoreError("You cannot deactivate yourself.")
    sessions = await Accounts(request.app.state.db).deactivate(user_id)
    if sessions is not None:
        await end_links(request, user_id, sessions)
        await _audit(request, "user deactivated", user_id)


async def reactivate(request: Request, user_id: int) -> None:
    await _target(request, user_id)
    if await Accounts(request.app.state.db).reactivate(user_id):
        await _audit(request, "user reactivated", user_id)


async def reset(request: Request, user_id: int, password: str | None) -> Invitation | None:
    """A new initial password, or (None) a new invitation; either way their sessions end."""
    await _target(request, user_id)
    if password is None:
        return await _invite(request, user_id)
    if problem := password_problem(password):
        raise StoreError(problem)
    sessions = await Accounts(request.app.state.db).set_password(
        user_id, await make_password_hash(password), keep_session=None
    )
    await end_links(request, user_id, sessions)
    await _audit(request, "password reset", user_id)
    return None


async def unlock(request: Request, user_id: int) -> None:
    account = await _target(request, user_id)
    request.app.state.login_throttle.unlock(account.user.username)
    await _audit(request, "user unlocked", user_id)


# -- the page -----------------------------------------------------------------


async def _page(request: Request, *, status: int = 200, **context: Any) -> Response:
    accounts = Accounts(request.app.state.db)
    return render(
        request,
        "admin_users.html",
        status=status,
        people=await listing(request),
        orgs=await accounts.organisations(),
        roles=ROLES,
        specialties=SPECIALTIES,
        **context,
    )


async def users_page(request: Request) -> Response:
    """``GET /admin/users``"""
    if not is_admin(current_user(request)):
        return error(403, NOT_ADMIN, request)
    return await _page(request)


async def users_create(request: Request) -> Response:
    """``POST /admin/users``: the form; an invitation link is shown on the answer, once."""
    if not is_admin(current_user(request)):
        return error(403, NOT_ADMIN, request)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    fields: dict[str, Any] = {
        k: str(form.get(k, "")).strip() for k in ("username", "name", "role", "specialty")
    }
    fields["invite"] = form.get("how") == "invite"
    fields["password"] = str(form.get("password", ""))[:2000] if not fields["invite"] else None
    try:
        fields["org_id"] = int(str(form.get("org", "")))
    except ValueError:
        return await _page(request, status=422, message="Choose the person's trust.", form=fields)
    try:
        account, invitation = await create(request, fields)
    except StoreError as exc:
        return await _page(request, status=422, message=str(exc), form=fields)
    return await _page(request, created=account, invitation=invitation)


async def _details(request: Request, form: Any) -> dict[str, Any]:
    """Name, role, trust and specialty from the person's row of the page (StoreError if the
    trust is not one)."""
    fields: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in ("name", "role", "specialty")}
    raw = str(form.get("org", ""))
    org = await request.app.state.db.catalog.org(int(raw)) if raw.isdigit() and len(raw) < 12 else None
    if org is None:
        raise StoreError("Choose the person's trust.")
    return fields | {"org_id": org.id}


async def user_act(request: Request) -> Response:
    """``POST /admin/users/{user_id}/{act}``: change, deactivate, reactivate, reset, unlock."""
    if not is_admin(current_user(request)):
        return error(403, NOT_ADMIN, request)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    user_id = int(request.path_params["user_id"])
    act = request.path_params["act"]
    try:
        invitation = None
        if act == "change":
            await change(request, user_id, await _details(request, form))
        elif act == "deactivate":
            await deactivate(request, user_id)
        elif act == "reactivate":
            await reactivate(request, user_id)
        elif act == "unlock":
            await unlock(request, user_id)
        elif act == "reset":
            password = str(form.get("password", ""))[:2000] if form.get("how") == "password" else None
            invitation = await reset(request, user_id, password)
        else:
            return error(404, "No such action.", request)
    except LookupError as exc:
        return error(404, str(exc), request)
    except StoreError as exc:
        return await _page(request, status=422, message=str(exc))
    if invitation is not None:
        account = await Accounts(request.app.state.db).account(user_id)
        return await _page(request, created=account, invitation=invitation)
    return RedirectResponse("/admin/users", status_code=303)


routes = [
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users", users_create, methods=["POST"]),
    Route("/admin/users/{user_id:int}/{act:str}", user_act, methods=["POST"]),
]
