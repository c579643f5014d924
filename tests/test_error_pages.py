"""Errors a person reads are pages of the app with a way back; scripts and the API keep their
plain line or their problem. Real server."""

from __future__ import annotations

import httpx

from tests.conftest import Server, sign_in_with_form

PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_missing_page_is_a_page_with_the_way_back(server: Server) -> None:
    person = sign_in_with_form(server, "north.path")
    response = person.client.get("/no/such/page", headers=PAGE)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in response.text
    assert 'href="/"' in response.text and "Back to the worklist" in response.text
    assert "Dr North" in response.text  # the usual top bar: still signed in
    person.client.close()


def test_a_case_one_may_not_see_is_a_page_too(server: Server) -> None:
    person = sign_in_with_form(server, "north.path")
    response = person.client.get("/cases/0000000000000000", headers=PAGE)
    assert response.status_code == 404
    assert "No such case." in response.text and "Back to the worklist" in response.text
    person.client.close()


def test_scripts_and_the_api_keep_plain_answers(server: Server) -> None:
    plain = server.client.get("/cases/0000000000000000")
    assert plain.status_code == 404
    assert plain.headers["content-type"].startswith("text/plain")
    api = server.client.get("/api/cases/0000000000000000", headers=PAGE)
    assert api.headers["content-type"] == "application/problem+json"
    tile = server.client.get("/slides/0000000000000000_files/0/0_0.jpeg", headers={"Accept": "image/*"})
    assert tile.headers["content-type"].startswith("text/plain")
    refused = httpx.post(server.url + "/logout", headers=PAGE, timeout=30)
    assert not refused.headers["content-type"].startswith("text/html") or refused.status_code < 400
