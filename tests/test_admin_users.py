"""People administration and one's own account: rights, bad input, invitations (single use,
expiry), deactivation ending sessions, tokens and live websockets at once, token scopes and
expiry, and the audit page naming people and cases."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    PASSWORD,
    Person,
    Server,
    add_user,
    api_token,
    collab,
    connect_db,
    seed_case,
    sign_in_with_form,
    start_server,
    stop_server,
)
from tests.yclient import YClient

NEW_PASSWORD = "a long and new passphrase"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Person]]:
    data_dir = tmp_path_factory.mktemp("data")
    seed_case(data_dir)
    add_user(data_dir, "north.admin", "admin", "North Trust", "--name", "Ada Admin")
    # Failed sign-ins below come "from" another address through the trusted proxy, so that the
    # per-address throttle does not hold up every sign-in of this module.
    server = start_server(data_dir, args=["--trusted-proxy", "127.0.0.1"])
    admin = sign_in_with_form(server, "north.admin")
    yield server, admin
    admin.client.close()
    stop_server(server)


def _api(person: Person, method: str, path: str, body: object = None) -> httpx.Response:
    return person.client.request(method, path, json=body, headers={"X-CSRF-Token": person.csrf})


def _db(server: Server) -> sqlite3.Connection:
    return connect_db(server.data_dir)


def _create(admin: Person, username: str, **extra: object) -> dict[str, object]:
    body = {
        "username": username,
        "name": username.title(),
        "role": "pathologist",
        "organisation": "North Trust",
    }
    made = _api(admin, "POST", "/api/admin/users", body | extra)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def _accept(server: Server, url: str, password: str = PASSWORD) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.post(url.removeprefix(server.url), data={"new": password, "again": password})


def test_only_administrators_manage_people(world: tuple[Server, Person]) -> None:
    server, _ = world
    path = sign_in_with_form(server, "north.path")
    assert path.get("/admin/users").status_code == 403
    refused = _api(
        path, "POST", "/api/admin/users", {"username": "x", "role": "admin", "organisation": "North Trust"}
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert _api(path, "GET", "/api/admin/users").status_code == 403
    assert path.get("/account").status_code == 200  # everyone has an account page
    path.client.close()
    with _db(server) as db:
        assert db.execute("SELECT COUNT(*) FROM users WHERE username = 'x'").fetchone()[0] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"username": "bad name!", "role": "pathologist", "organisation": "North Trust", "invite": True},
        {"username": "nobody1", "role": "wizard", "organisation": "North Trust", "invite": True},
        {"username": "nobody2", "role": "pathologist", "organisation": "Atlantis", "invite": True},
        {"username": "nobody3", "role": "pathologist", "organisation": "North Trust", "password": "short"},
        {"username": "nobody4", "role": "pathologist", "organisation": "North Trust"},  # neither
        {"username": "nobody5", "role": "pathologist", "organisation": "North Trust", "invite": True, "x": 1},
        {
            "username": "nobody6",
            "role": "clinician",
            "organisation": "North Trust",
            "invite": True,
            "specialty": "x",
        },
        {"username": "north.path", "role": "pathologist", "organisation": "North Trust", "invite": True},
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    world: tuple[Server, Person], body: dict[str, object]
) -> None:
    server, admin = world
    with _db(server) as db:
        before = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    refused = _api(admin, "POST", "/api/admin/users", body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"]
    with _db(server) as db:
        assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == before


def test_without_the_csrf_header_a_session_cannot_create(world: tuple[Server, Person]) -> None:
    _, admin = world
    body = {"username": "sneaky", "role": "admin", "organisation": "North Trust", "invite": True}
    assert admin.client.post("/api/admin/users", json=body).status_code == 403


def test_an_invitation_works_once_and_signs_in(world: tuple[Server, Person]) -> None:
    server, admin = world
    made = _create(admin, "new.invitee", invite=True)
    assert made["status"] == "invited"
    url = str(made["invite_url"])
    assert re.fullmatch(rf"{server.url}/invite/[A-Za-z0-9_-]{{43}}", url)
    with _db(server) as db:  # only a hash of the link's secret is stored
        stored = [row[0] for row in db.execute("SELECT token_hash FROM invites")]
        assert url.rsplit("/", 1)[1] not in stored
    # No password yet: nobody signs in as them.
    with httpx.Client(base_url=server.url) as client:
        assert client.get(url.removeprefix(server.url)).status_code == 200
        assert (
            client.post(
                url.removeprefix(server.url), data={"new": "too short", "again": "too short"}
            ).status_code
            == 422
        )
    accepted = _accept(server, url)
    assert accepted.status_code == 303 and accepted.headers["location"] == "/"
    assert "collab_session" in accepted.headers["set-cookie"]
    assert _accept(server, url).status_code == 410  # used up
    invitee = sign_in_with_form(server, "new.invitee")
    assert invitee.get("/api/me").json()["username"] == "new.invitee"
    invitee.client.close()


def test_an_expired_invitation_is_refused(world: tuple[Server, Person]) -> None:
    server, admin = world
    url = str(_create(admin, "late.invitee", invite=True)["invite_url"])
    with _db(server) as db:
        db.execute("UPDATE invites SET expires = '2000-01-01T00:00:00+00:00' WHERE used IS NULL")
    assert _accept(server, url).status_code == 410
    with httpx.Client(base_url=server.url) as client:
        assert client.get(url.removeprefix(server.url)).status_code == 410


def test_deactivation_ends_sessions_tokens_and_websockets_at_once(world: tuple[Server, Person]) -> None:
    server, admin = world
    made = _create(admin, "leaver", password=PASSWORD)
    with _db(server) as db:
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()
    leaver = sign_in_with_form(server, "leaver")
    token = api_token(server.data_dir, "leaver")
    ws_url = server.url.replace("http", "ws") + f"/ws/cases/{case_id}"

    async def scenario() -> None:
        live = await YClient(ws_url, token).connect()
        await asyncio.wait_for(live.synced.wait(), 10)
        changed = await asyncio.to_thread(
            _api, admin, "PATCH", f"/api/admin/users/{made['id']}", {"active": False}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["status"] == "deactivated"
        await asyncio.wait_for(live.closed.wait(), 3)
        assert live.close_code == 4403

    asyncio.run(scenario())
    assert leaver.get("/").status_code == 303  # back to sign-in, the cache notwithstanding
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/me").status_code == 401
    with httpx.Client(base_url=server.url) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf
        refused = client.post("/login", data={"username": "leaver", "password": PASSWORD, "csrf": csrf[1]})
        assert refused.status_code == 401
    # Back again: the password works again; the old session and the old token do not (a token
    # someone kept while the account was stopped must not come back with it).
    assert (
        _api(admin, "PATCH", f"/api/admin/users/{made['id']}", {"active": True}).json()["status"] == "active"
    )
    again = sign_in_with_form(server, "leaver")
    assert again.get("/api/me").status_code == 200
    assert leaver.get("/").status_code == 303
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/me").status_code == 401
    again.client.close()
    leaver.client.close()
    with _db(server) as db:
        events = {
            row[0]
            for row in db.execute("SELECT event FROM audit WHERE detail LIKE ?", (f"user {made['id']}%",))
        }
    assert {"user created", "user deactivated", "user reactivated"} <= events


def test_administrators_cannot_deactivate_themselves(world: tuple[Server, Person]) -> None:
    server, admin = world
    me = admin.get("/api/me").json()
    assert _api(admin, "PATCH", f"/api/admin/users/{me['id']}", {"active": False}).status_code == 422
    assert _api(admin, "PATCH", "/api/admin/users/999999", {"role": "admin"}).status_code == 404


def test_reset_and_unlock(world: tuple[Server, Person]) -> None:
    server, admin = world
    made = _create(admin, "forgetful", password=PASSWORD)
    person = sign_in_with_form(server, "forgetful")
    # Five wrong passwords lock the username; the administrator sees and lifts the lock.
    with httpx.Client(base_url=server.url, headers={"X-Forwarded-For": "10.9.8.7"}) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf
        for _ in range(5):
            client.post("/login", data={"username": "forgetful", "password": "wrong guess", "csrf": csrf[1]})
    [row] = [
        u for u in _api(admin, "GET", "/api/admin/users").json()["users"] if u["username"] == "forgetful"
    ]
    assert row["status"] == "locked"
    assert _api(admin, "POST", f"/api/admin/users/{made['id']}/unlock", {}).status_code == 200
    [row] = [
        u for u in _api(admin, "GET", "/api/admin/users").json()["users"] if u["username"] == "forgetful"
    ]
    assert row["status"] == "active"
    # A reset by invitation: the old password stops, their session ends, the link lets them in.
    assert (
        _api(admin, "POST", f"/api/admin/users/{made['id']}/reset", {"password": "short"}).status_code == 422
    )
    reset = _api(admin, "POST", f"/api/admin/users/{made['id']}/reset", {})
    assert reset.status_code == 200 and reset.json()["invite_url"]
    assert person.get("/").status_code == 303
    assert _accept(server, reset.json()["invite_url"], NEW_PASSWORD).status_code == 303
    person.client.close()


def test_own_password_and_tokens(world: tuple[Server, Person]) -> None:
    server, admin = world
    _create(admin, "tinkerer", password=PASSWORD)
    me = sign_in_with_form(server, "tinkerer")
    other = sign_in_with_form(server, "tinkerer")
    wrong = _api(
        me, "POST", "/api/account/password", {"current": "nope", "new": NEW_PASSWORD, "again": NEW_PASSWORD}
    )
    assert wrong.status_code == 422
    differ = _api(
        me, "POST", "/api/account/password", {"current": PASSWORD, "new": NEW_PASSWORD, "again": "x"}
    )
    assert differ.status_code == 422
    changed = _api(
        me, "POST", "/api/account/password", {"current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD}
    )
    assert changed.status_code == 200, changed.text
    assert me.get("/api/me").status_code == 200  # this sign-in carries on
    assert other.get("/").status_code == 303  # the other ended

    for bad in (
        {"scope": "admin"},
        {"scope": "read", "expires_days": 0},
        {"scope": "read", "expires_days": "7"},
    ):
        assert _api(me, "POST", "/api/account/tokens", bad).status_code == 422
    made = _api(me, "POST", "/api/account/tokens", {"scope": "read", "expires_days": 7})
    assert made.status_code == 201, made.text
    read = made.json()
    assert read["scope"] == "read" and read["expires"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read['token']}"}) as client:
        assert client.get("/api/me").status_code == 200
        refused = client.post("/api/account/tokens", json={"scope": "write"})
        assert refused.status_code == 403 and "only read" in refused.json()["detail"]
        assert client.delete(f"/api/account/tokens/{read['id']}").status_code == 403
    listed = _api(me, "GET", "/api/account/tokens").json()["tokens"]
    assert [t["id"] for t in listed] == [read["id"]] and listed[0]["last_used"]
    assert "token" not in listed[0]
    # A write token writes; an expired one is refused; a revoked one too.
    write = _api(me, "POST", "/api/account/tokens", {"scope": "write", "expires_days": None}).json()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {write['token']}"}) as client:
        assert (
            client.post("/api/account/tokens", json={"scope": "read", "expires_days": 1}).status_code == 201
        )
    with _db(server) as db:
        db.execute("UPDATE api_tokens SET expires = '2000-01-01T00:00:00+00:00' WHERE id = ?", (read["id"],))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read['token']}"}) as client:
        assert client.get("/api/me").status_code == 401
    assert _api(me, "DELETE", f"/api/account/tokens/{write['id']}").status_code == 200
    assert _api(me, "DELETE", f"/api/account/tokens/{write['id']}").status_code == 404
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {write['token']}"}) as client:
        assert client.get("/api/me").status_code == 401
    me.client.close()
    other.client.close()


def test_tokens_made_before_scopes_keep_full_rights_and_the_cli_makes_scoped_ones(
    world: tuple[Server, Person],
) -> None:
    server, _ = world
    old = api_token(server.data_dir, "north.path")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {old}"}) as client:
        assert (
            client.post("/api/account/tokens", json={"scope": "read", "expires_days": 1}).status_code == 201
        )
    made = collab(
        "users", "token", "north.path", "--scope", "read", "--expires-days", "3", data_dir=server.data_dir
    )
    assert made.returncode == 0, made.stderr
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {made.stdout.strip()}"}
    ) as client:
        assert client.post("/api/account/tokens", json={"scope": "read"}).status_code == 403
    listed = collab("users", "tokens", "north.path", data_dir=server.data_dir)
    assert "read" in listed.stdout


def test_the_pages_create_invite_and_show_names_in_the_audit(world: tuple[Server, Person]) -> None:
    server, admin = world
    orgs = re.findall(r'<option value="(\d+)"', admin.get("/admin/users").text)
    page = admin.post(
        "/admin/users",
        username="paged",
        name="Dr Paged",
        role="clinician",
        org=orgs[0],
        specialty="oncology",
        how="invite",
    )
    assert page.status_code == 200, page.text
    assert "/invite/" in page.text and "Dr Paged" in page.text
    bad = admin.post(
        "/admin/users",
        username="paged2",
        name="P",
        role="clinician",
        org=orgs[0],
        how="password",
        password="x",
    )
    assert bad.status_code == 422 and "at least 12" in bad.text
    audit = admin.get("/admin/audit?action=user+created")
    assert audit.status_code == 200
    assert "Ada Admin" in audit.text and "Dr Paged" in audit.text
    assert admin.get("/api/audit").status_code == 200
    assert Path(server.data_dir).exists()


def test_the_page_changes_a_persons_role_trust_and_specialty(world: tuple[Server, Person]) -> None:
    server, admin = world
    assert collab("orgs", "add", "West Trust", data_dir=server.data_dir).returncode == 0
    person = _create(admin, "moving.doc", password=NEW_PASSWORD)
    with _db(server) as db:
        west = db.execute("SELECT id FROM organisations WHERE name = 'West Trust'").fetchone()[0]
    page = admin.get("/admin/users").text
    assert f'action="/admin/users/{person["id"]}/change"' in page
    changed = admin.post(
        f"/admin/users/{person['id']}/change",
        name="Dr Moving",
        role="clinician",
        org=str(west),
        specialty="oncology",
    )
    assert changed.status_code == 303
    listed = {p["username"]: p for p in _api(admin, "GET", "/api/admin/users").json()["users"]}
    assert (listed["moving.doc"]["name"], listed["moving.doc"]["role"]) == ("Dr Moving", "clinician")
    assert (listed["moving.doc"]["organisation"], listed["moving.doc"]["specialty"]) == (
        "West Trust",
        "oncology",
    )
    for bad in ({"role": "wizard", "org": str(west)}, {"role": "clinician", "org": "99999"}):
        refused = admin.post(f"/admin/users/{person['id']}/change", name="Dr Moving", specialty="", **bad)
        assert refused.status_code == 422, bad
    again = {p["username"]: p for p in _api(admin, "GET", "/api/admin/users").json()["users"]}["moving.doc"]
    assert (again["role"], again["organisation"]) == ("clinician", "West Trust")
    with _db(server) as db:
        events = [r[0] for r in db.execute("SELECT detail FROM audit WHERE event = 'user changed'")]
    assert events and "role" in events[-1]
