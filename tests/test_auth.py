"""Signing in and out through the real form: cookies, CSRF, throttling, and the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    INTEGRITY_ERRORS,
    PASSWORD,
    Server,
    add_slides,
    add_user,
    api_token,
    collab,
    connect_db,
    write_pyramid_tiff,
)


@pytest.fixture
def anonymous(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match[1]


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": _form_csrf(page.text), "next": "/"},
    )


def test_pages_send_strangers_to_the_sign_in_form(anonymous: httpx.Client) -> None:
    response = anonymous.get("/cases/abc")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/cases/abc"
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/healthz").status_code == 200


def test_sign_in_sets_a_safe_session_cookie_and_sign_out_ends_it(anonymous: httpx.Client) -> None:
    response = sign_in(anonymous, "north.path")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("collab_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    worklist = anonymous.get("/")
    assert worklist.status_code == 200 and "Dr North" in worklist.text
    # Signing out needs the session's CSRF token.
    assert anonymous.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert anonymous.post("/logout", data={"csrf": _form_csrf(worklist.text)}).status_code == 303
    assert anonymous.get("/api/worklist").status_code == 401


def test_a_tampered_cookie_is_no_session(anonymous: httpx.Client, server: Server) -> None:
    sign_in(anonymous, "north.path")
    value = anonymous.cookies["collab_session"]
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")
    with httpx.Client(base_url=server.url, cookies={"collab_session": forged}) as other:
        assert other.get("/api/worklist").status_code == 401


def test_sign_in_form_needs_its_csrf_token(anonymous: httpx.Client) -> None:
    anonymous.get("/login")
    response = anonymous.post(
        "/login", data={"username": "north.path", "password": PASSWORD, "csrf": "guess"}
    )
    assert response.status_code == 403


def test_a_second_load_of_the_sign_in_form_keeps_the_first_valid(anonymous: httpx.Client) -> None:
    # Browsers fetch /favicon.ico after the form loads; it is redirected to /login too.
    first = anonymous.get("/login")
    assert anonymous.get("/favicon.ico", follow_redirects=True).status_code == 200
    response = anonymous.post(
        "/login",
        data={"username": "north.path", "password": PASSWORD, "csrf": _form_csrf(first.text), "next": "/"},
    )
    assert response.status_code == 303


def test_a_malformed_sign_in_cookie_is_replaced(anonymous: httpx.Client) -> None:
    page = anonymous.get("/login", headers={"Cookie": "collab_login_csrf=x<script>"})
    assert "x<script>" not in page.text
    assert anonymous.cookies["collab_login_csrf"] == _form_csrf(page.text)


def test_no_redirect_away_from_the_site(anonymous: httpx.Client) -> None:
    page = anonymous.get("/login", params={"next": "//evil.example/"})
    response = anonymous.post(
        "/login",
        data={
            "username": "north.path",
            "password": PASSWORD,
            "csrf": _form_csrf(page.text),
            "next": "//evil.example/",
        },
    )
    assert response.headers["location"] == "/"


def test_failed_sign_ins_are_throttled(anonymous: httpx.Client) -> None:
    for _ in range(5):
        wrong = sign_in(anonymous, "north.path", "wrong password")
        assert wrong.status_code == 401
        assert "do not match" in wrong.text
    blocked = sign_in(anonymous, "north.path")  # even the right password, for now
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed attempts" in blocked.text


def test_audit_log_records_every_kind_of_event(
    server: Server, anonymous: httpx.Client, tmp_path: Path
) -> None:
    data_dir = server.data_dir
    collab("orgs", "add", "South Trust", data_dir=data_dir)
    add_user(data_dir, "admin", "admin", "North Trust")
    [slide_id] = add_slides(data_dir, write_pyramid_tiff(tmp_path / "s.tiff", 600, 500))
    sign_in(anonymous, "north.path", "wrong password")  # login failed
    sign_in(anonymous, "north.path")  # login
    case_id = anonymous.get("/api/worklist").json()["cases"][0]["id"]
    page = anonymous.get(f"/cases/{case_id}")  # case opened
    anonymous.get(f"/slides/{slide_id}.dzi")  # slide opened
    csrf = _form_csrf(page.text)
    shared = anonymous.post(
        f"/cases/{case_id}/shares", data={"csrf": csrf, "with": "South Trust", "access": "read"}
    )
    assert shared.status_code == 303  # case shared
    share_id = anonymous.get(f"/api/cases/{case_id}").json()["shares"][0]["id"]
    assert (
        anonymous.post(f"/cases/{case_id}/shares/{share_id}/revoke", data={"csrf": csrf}).status_code == 303
    )
    anonymous.post("/logout", data={"csrf": csrf})  # logout
    token = api_token(data_dir, "admin")  # token created
    entries = httpx.get(f"{server.url}/api/audit", headers={"Authorization": f"Bearer {token}"}).json()[
        "entries"
    ]
    kinds = {e["event"] for e in entries}
    assert kinds >= {
        "login failed",
        "login",
        "case opened",
        "slide opened",
        "case shared",
        "share revoked",
        "logout",
        "token created",
    }
    login = next(e for e in entries if e["event"] == "login")
    assert (login["username"], login["client"], login["org_id"]) == ("north.path", "127.0.0.1", 1)
    assert login["at"].endswith("+00:00")
    csv = httpx.get(
        f"{server.url}/api/audit", params={"format": "csv"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "id,at,event,user_id,username,org_id,client,case_id,slide_id,detail"


def test_the_audit_log_cannot_be_changed(server: Server) -> None:
    with connect_db(server.data_dir) as db:
        db.execute("INSERT INTO audit (at, event) VALUES ('2026-01-01T00:00:00+00:00', 'login')")
    for change in ("UPDATE audit SET event = 'logout'", "DELETE FROM audit"):
        with pytest.raises(INTEGRITY_ERRORS, match="append-only"), connect_db(server.data_dir) as db:
            db.execute(change)
    with connect_db(server.data_dir) as db:
        assert db.execute("SELECT count(*) FROM audit WHERE event = 'login'").fetchone()[0] >= 1


def test_only_pathologists_and_admins_of_the_owning_trust_share(
    server: Server, anonymous: httpx.Client
) -> None:
    add_user(server.data_dir, "north.onc", "clinician", "North Trust", "--specialty", "oncology")
    sign_in(anonymous, "north.onc")
    case_id = anonymous.get("/api/worklist").json()["cases"][0]["id"]
    page = anonymous.get(f"/cases/{case_id}")
    assert "Shared with" not in page.text  # no sharing form for a clinician
    response = anonymous.post(
        f"/cases/{case_id}/shares",
        data={"csrf": _form_csrf(page.text), "with": "North Trust", "access": "read"},
    )
    assert response.status_code == 403
    assert "Only pathologists and administrators" in response.text
    assert "shares" not in anonymous.get(f"/api/cases/{case_id}").json()
