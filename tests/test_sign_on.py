"""Single sign-on through a trust's OpenID Connect provider: a real provider (npm oidc-provider,
PKCE required) signs people of two trusts in; collab creates them on first sign-in with the trust
and role their groups give, updates them after, refuses whom the mapping does not admit, and ends
the provider's session on sign-out. Each refusal the protocol needs has its test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.conftest import Server, connect_db, db_url, row_dict
from tests.oidc_provider import ACCOUNTS, OidcProvider, signed_on_site

BROWSERS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while BROWSERS:
        BROWSERS.pop().close()


@pytest.fixture
def trusts(tmp_path: Path) -> Iterator[tuple[Server, OidcProvider]]:
    with signed_on_site(tmp_path) as site:
        yield site


def begin(server: Server, browser: httpx.Client, trust: str = "north") -> httpx.Response:
    """Click "Sign in with … Trust": collab sends the browser to the provider's sign-in page."""
    started = browser.get(f"{server.url}/login/oidc/{trust}", params={"next": "/meetings"})
    assert started.status_code == 303, started.text
    return browser.get(started.headers["location"], follow_redirects=True)


def back_to_collab(provider: OidcProvider, browser: httpx.Client, page: httpx.Response, account: str) -> str:
    """Sign in at the provider; the address it sends the browser back to collab with."""
    answer = provider.sign_in(browser, page, account)
    for _ in range(10):
        location = answer.headers.get("location", "")
        if "/callback?" in location:
            return location
        assert answer.is_redirect, (answer.status_code, answer.text[:500])
        answer = browser.get(urljoin(str(answer.url), location))
    raise AssertionError("the provider did not send the browser back")


def sign_in(
    server: Server, provider: OidcProvider, account: str, trust: str = "north"
) -> tuple[httpx.Client, httpx.Response]:
    browser = httpx.Client(timeout=20)
    BROWSERS.append(browser)
    callback = back_to_collab(provider, browser, begin(server, browser, trust), account)
    return browser, browser.get(callback)


def _user(server: Server, username_like: str) -> dict[str, Any] | None:
    with connect_db(server.data_dir) as db:
        return row_dict(
            db.execute(
                "SELECT users.*, organisations.name AS org FROM users"
                " JOIN organisations ON organisations.id = org_id WHERE username LIKE ?",
                (username_like,),
            )
        )


def test_first_sign_in_creates_the_person_with_their_trust_and_role(
    trusts: tuple[Server, OidcProvider],
) -> None:
    server, provider = trusts
    browser, answer = sign_in(server, provider, "ada")
    assert answer.status_code == 303 and answer.headers["location"] == "/meetings", answer.text
    worklist = browser.get(f"{server.url}/")
    assert worklist.status_code == 200 and "Dr Ada North" in worklist.text and "S26-1" in worklist.text
    ada = _user(server, "ada.north")
    assert (ada["display_name"], ada["org"], ada["role"]) == ("Dr Ada North", "North Trust", "pathologist")

    # South's pathologist lands in South Trust (made on first sign-in), not in North.
    _, answer = sign_in(server, provider, "sam", "south")
    assert answer.status_code == 303
    sam = _user(server, "sam.south")
    assert (sam["org"], sam["role"]) == ("South Trust", "pathologist")

    # The coordinator's group gives a clinician who coordinates MDTs.
    _, answer = sign_in(server, provider, "cora")
    cora = _user(server, "cora")
    assert (cora["role"], cora["specialty"]) == ("clinician", "nursing/MDT coordination")


def test_a_later_sign_in_updates_the_person(trusts: tuple[Server, OidcProvider], tmp_path: Path) -> None:
    server, provider = trusts
    sign_in(server, provider, "ada")
    with connect_db(server.data_dir) as db:
        db.execute(
            "UPDATE users SET display_name = 'Old Name', role = 'trainee' WHERE username = 'ada.north'"
        )
    _, answer = sign_in(server, provider, "ada")
    assert answer.status_code == 303
    ada = _user(server, "ada.north")
    assert (ada["display_name"], ada["role"]) == ("Dr Ada North", "pathologist")
    with connect_db(server.data_dir) as db:
        assert db.execute("SELECT count(*) FROM users WHERE username LIKE 'ada%'").fetchone()[0] == 1


def test_someone_the_mapping_does_not_admit_is_refused_with_a_clear_page(
    trusts: tuple[Server, OidcProvider],
) -> None:
    server, provider = trusts
    browser, answer = sign_in(server, provider, "nick")
    assert answer.status_code == 403
    assert "North Trust signed you in, but collab cannot admit you" in answer.text
    assert "not in any group that has a role in collab" in answer.text
    assert _user(server, "nick%") is None
    assert browser.get(f"{server.url}/", follow_redirects=False).status_code in (302, 303)


def test_a_local_account_is_never_taken_over_by_name(trusts: tuple[Server, OidcProvider]) -> None:
    server, provider = trusts
    assert ACCOUNTS["ada"]["preferred_username"].startswith("ada.north@")  # a local name, below
    with connect_db(server.data_dir) as db:
        db.execute("UPDATE users SET username = 'ada.north' WHERE username = 'north.path'")
    sign_in(server, provider, "ada")
    with connect_db(server.data_dir) as db:
        rows = db.execute(
            "SELECT username, password_hash != '!' FROM users WHERE username LIKE 'ada.north%'"
        ).fetchall()
    assert sorted(rows) == [("ada.north", 1), ("ada.north.north", 0)]


def test_sign_out_ends_the_session_and_the_providers(trusts: tuple[Server, OidcProvider]) -> None:
    server, provider = trusts
    browser, _ = sign_in(server, provider, "ada")
    page = browser.get(f"{server.url}/")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    out = browser.post(f"{server.url}/logout", data={"csrf": csrf})
    assert out.status_code == 303
    where = urlsplit(out.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{provider.issuer}/session/end"
    query = parse_qs(where.query)
    assert query["post_logout_redirect_uri"] == [f"{server.url}/login"] and query["id_token_hint"]
    assert browser.get(f"{server.url}/").status_code in (302, 303)  # signed out here


def test_sign_ins_under_way_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beginning a sign-in needs no account: what it keeps must not grow without end."""
    import asyncio

    from collab.store import Database
    from collab.store import sign_on as store

    monkeypatch.setattr(store, "MAX_PENDING", 3)

    async def begin_many() -> list[bool]:
        async with Database(tmp_path / "collab.sqlite3", db_url()) as db:
            flow = store.Flow("north", "nonce", "verifier", "/")
            return [await db.sign_on.begin(f"state-{n}", "browser", flow) for n in range(4)]

    assert asyncio.run(begin_many()) == [True, True, True, False]
