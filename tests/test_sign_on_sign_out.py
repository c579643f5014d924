"""Signing out of a session begun through a trust's provider (the real npm oidc-provider): the
provider's own session ends too, so the next sign-in asks at the trust again; nothing of the
provider's sign-in stays in the browser; and a person in very many groups (an ID token too big
for a cookie, as Entra ID's are for people in hundreds of groups) still signs out at the trust."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import PASSWORD, Server
from tests.oidc_provider import OidcProvider, signed_on_site
from tests.test_sign_on import BROWSERS, begin, sign_in

# Browsers keep a cookie of at most 4096 bytes (name, value and attributes; RFC 6265 section
# 6.1's minimum, and what Chromium and Firefox keep): a bigger one is dropped without a word.
COOKIE_LIMIT = 4096
# Like an Entra ID person in many security groups: each group is its object id.
MANY_GROUPS = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(150)] + ["north-pathologists"]


@pytest.fixture
def trusts(tmp_path: Path) -> Iterator[tuple[Server, OidcProvider]]:
    gus = {"name": "Dr Gus Groups", "preferred_username": "gus@north.nhs.uk", "groups": MANY_GROUPS}
    try:
        with signed_on_site(tmp_path, more_accounts={"gus": gus}) as site:
            yield site
    finally:
        while BROWSERS:
            BROWSERS.pop().close()


def sign_out(server: Server, browser: httpx.Client) -> httpx.Response:
    page = browser.get(f"{server.url}/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[:500]
    out = browser.post(f"{server.url}/logout", data={"csrf": csrf.group(1)})
    assert out.status_code == 303, out.text
    return out


def at_the_provider(out: httpx.Response, provider: OidcProvider) -> dict[str, list[str]]:
    """The query of the provider's end-session address sign-out sent the browser to."""
    where = urlsplit(out.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{provider.issuer}/session/end"
    return parse_qs(where.query)


def confirm_at_the_provider(browser: httpx.Client, out: httpx.Response) -> httpx.Response:
    """The provider asks "sign out?" (its own page): yes. Its answer (not followed)."""
    page = browser.get(out.headers["location"])
    assert page.status_code == 200, page.text[:500]
    form = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)">', page.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert form and xsrf, page.text[:500]
    return browser.post(form.group(1), data={"xsrf": xsrf.group(1), "logout": "yes"})


def test_sign_out_ends_the_providers_session_and_the_next_sign_in_asks_again(
    trusts: tuple[Server, OidcProvider],
) -> None:
    server, provider = trusts
    browser, answer = sign_in(server, provider, "ada")
    assert answer.status_code == 303
    # The provider remembers the person: beginning again goes straight back to collab.
    again = begin(server, browser)
    assert str(again.url).startswith(server.url) and "Sign in at the trust" not in again.text

    out = sign_out(server, browser)
    query = at_the_provider(out, provider)
    assert query["client_id"] == ["collab-north"] and query["id_token_hint"]
    assert query["post_logout_redirect_uri"] == [f"{server.url}/login"]
    # Nothing of the trust's sign-in (its ID token) stays in the browser.
    assert "collab_sign_on_provider" not in browser.cookies
    assert browser.get(f"{server.url}/").status_code == 303

    done = confirm_at_the_provider(browser, out)
    assert done.is_redirect and done.headers["location"] == f"{server.url}/login", done.text[:500]
    # The trust's session has ended: the next sign-in asks who it is.
    page = begin(server, browser)
    assert "Sign in at the trust" in page.text, (page.url, page.text[:500])


def test_a_password_sign_in_after_is_not_sent_to_the_provider_on_sign_out(
    trusts: tuple[Server, OidcProvider],
) -> None:
    server, provider = trusts
    browser, _ = sign_in(server, provider, "ada")
    # The session ends without a sign-out (it expired, or was ended elsewhere)...
    browser.cookies.delete("collab_session")
    # ...and someone signs in at the same computer with a local (break-glass) account.
    login = browser.get(f"{server.url}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf
    signed = browser.post(
        f"{server.url}/login",
        data={"username": "north.path", "password": PASSWORD, "csrf": csrf.group(1)},
    )
    assert signed.status_code == 303, signed.text[:500]
    out = sign_out(server, browser)
    assert out.headers["location"] == "/login"


def test_a_person_in_very_many_groups_signs_in_and_out_at_the_trust(
    trusts: tuple[Server, OidcProvider],
) -> None:
    server, provider = trusts
    browser, answer = sign_in(server, provider, "gus")
    assert answer.status_code == 303, answer.text[:500]
    for header in answer.headers.get_list("set-cookie"):
        assert len(header) <= COOKIE_LIMIT, header[:100]
    out = sign_out(server, browser)
    query = at_the_provider(out, provider)
    # Too big to keep, the ID token is not sent; the client id names the application instead.
    assert query["client_id"] == ["collab-north"]
    assert query["post_logout_redirect_uri"] == [f"{server.url}/login"]
    done = confirm_at_the_provider(browser, out)
    assert done.headers["location"] == f"{server.url}/login"
