"""What single sign-on refuses: ID tokens with a wrong signature, audience or issuer, expired, or
carrying another sign-in's nonce (from an attacker's provider, tests/oidc_forger.py, which hands
out an honest token too, so each refusal is the check's doing); a sign-in replayed or brought
back to another browser; and a code exchanged without its PKCE verifier (at the real provider)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Server, connect_db
from tests.oidc_forger import Forger, forged_config
from tests.oidc_provider import OidcProvider, signed_on_site
from tests.test_sign_on import BROWSERS, back_to_collab, begin

Sites = tuple[Server, OidcProvider, Forger]


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    forger = Forger()
    forger.start()
    try:
        with signed_on_site(tmp_path, more_config=forged_config(forger.issuer)) as (server, provider):
            yield server, provider, forger
    finally:
        for browser in BROWSERS:
            browser.close()
        BROWSERS.clear()
        forger.stop()


def _browser() -> httpx.Client:
    browser = httpx.Client(timeout=20)
    BROWSERS.append(browser)
    return browser


def _forged_sign_in(server: Server, forger: Forger, forgery: str) -> httpx.Response:
    forger.forgery = forgery
    browser = _browser()
    started = browser.get(f"{server.url}/login/oidc/forged")
    assert started.status_code == 303
    back = browser.get(started.headers["location"])  # the forger sends the browser straight back
    assert back.status_code == 302
    return browser.get(back.headers["location"])


def _forged_users(server: Server) -> int:
    with connect_db(server.data_dir) as db:
        return int(
            db.execute("SELECT count(*) FROM oidc_identities WHERE subject = 'forged-ada'").fetchone()[0]
        )


def test_an_honest_token_from_the_same_provider_is_accepted(
    sites: Sites,
) -> None:
    server, _, forger = sites
    answer = _forged_sign_in(server, forger, "")
    assert answer.status_code == 303, answer.text
    assert _forged_users(server) == 1
    assert len(forger.verifiers) == 1 and len(forger.verifiers[0]) >= 43  # PKCE: collab sent its verifier


@pytest.mark.parametrize(
    ("forgery", "said"),
    [
        ("key", "signature is not Forged Trust"),
        ("audience", "issued for another application"),
        ("issuer", "not valid here"),
        ("expired", "not valid here"),
        ("nonce", "not valid here"),
    ],
)
def test_a_forged_id_token_is_refused(sites: Sites, forgery: str, said: str) -> None:
    server, _, forger = sites
    answer = _forged_sign_in(server, forger, forgery)
    assert answer.status_code == 403, answer.text
    assert said in answer.text and "collab cannot admit you" in answer.text
    assert "collab_session" not in answer.cookies
    assert _forged_users(server) == 0
    with connect_db(server.data_dir) as db:
        failed = db.execute("SELECT detail FROM audit WHERE event = 'login failed'").fetchall()
    assert any(said in row[0] for row in failed)


def test_a_sign_in_cannot_be_replayed_or_finished_in_another_browser(sites: Sites) -> None:
    server, provider, _ = sites
    browser = _browser()
    callback = back_to_collab(provider, browser, begin(server, browser), "ada")
    # Brought back to another browser (one that did not begin it): refused, and spent.
    thief = _browser()
    stolen = thief.get(callback)
    assert stolen.status_code == 400 and "already been used" in stolen.text
    assert browser.get(callback).status_code == 400

    # Begun and finished in one browser: in, once; the same answer again is refused.
    browser = _browser()
    callback = back_to_collab(provider, browser, begin(server, browser), "ada")
    assert browser.get(callback).status_code == 303
    replayed = browser.get(callback)
    assert replayed.status_code == 400 and "already been used" in replayed.text


def test_the_provider_refuses_a_code_without_its_pkce_verifier(
    sites: Sites,
) -> None:
    server, provider, _ = sites
    browser = _browser()
    callback = back_to_collab(provider, browser, begin(server, browser), "ada")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    token_endpoint = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()["token_endpoint"]
    stolen = httpx.post(
        token_endpoint,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": callback.split("?")[0]},
        auth=("collab-north", "north-client-secret"),
    )
    assert stolen.status_code == 400, stolen.text
    assert stolen.json()["error"] in ("invalid_grant", "invalid_request")
    assert (
        "code_verifier" in stolen.json().get("error_description", "")
        or stolen.json()["error"] == "invalid_grant"
    )
    # collab itself, which holds the verifier, still completes that sign-in.
    assert browser.get(callback).status_code == 303
