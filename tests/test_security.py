"""HTTP security headers on every answer, no caching of patient data, no inline script
(docs/security.md: the checklist names these tests)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import (
    PASSWORD,
    REPO,
    Server,
    add_slides,
    api_token,
    collab,
    connect_db,
    sign_in_with_form,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

TEMPLATES = REPO / "collab" / "templates"


@pytest.fixture
def slide_id(server: Server, tmp_path: Path) -> str:
    (added,) = add_slides(server.data_dir, write_pyramid_tiff(tmp_path / "s.tiff", 1024, 768))
    return added


def _case_id(server: Server) -> str:
    with connect_db(server.data_dir) as db:
        return str(db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()[0])


def _answers(server: Server, slide_id: str) -> dict[str, httpx.Response]:
    """One answer of every kind: pages, API, tiles, static files, redirects and errors."""
    signed_in = server.client
    case_id = _case_id(server)
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        unsigned = {
            "sign-in page": anonymous.get("/login"),
            "redirect to sign in": anonymous.get("/"),
            "401 from the API": anonymous.get("/api/worklist"),
            "static file": anonymous.get("/static/css/app.css"),
            "health check": anonymous.get("/healthz"),
        }
    return unsigned | {
        "worklist": signed_in.get("/"),
        "worklist JSON": signed_in.get("/api/worklist"),
        "case page": signed_in.get(f"/cases/{case_id}"),
        "case JSON": signed_in.get(f"/api/cases/{case_id}"),
        "annotations export": signed_in.get(f"/api/cases/{case_id}/annotations.geojson"),
        "tile": signed_in.get(f"/slides/{slide_id}_files/0/0_0.jpeg"),
        "404": signed_in.get("/cases/0000000000000000"),
    }


def test_every_answer_carries_the_security_headers(server: Server, slide_id: str) -> None:
    for what, response in _answers(server, slide_id).items():
        assert response.status_code < 500, what
        headers = response.headers
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, what
        assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp, what
        assert headers.get("x-frame-options") == "SAMEORIGIN", what
        assert headers.get("referrer-policy") == "no-referrer", what
        assert headers.get("x-content-type-options") == "nosniff", what
        assert "strict-transport-security" not in headers, f"{what}: HSTS over plain http means nothing"


def test_patient_data_is_never_cached_but_tiles_are_privately(server: Server, slide_id: str) -> None:
    answers = _answers(server, slide_id)
    for what in (
        "worklist",
        "worklist JSON",
        "case page",
        "case JSON",
        "annotations export",
        "401 from the API",
    ):
        assert answers[what].headers.get("cache-control") == "no-store", what
    tile = answers["tile"].headers["cache-control"]
    assert tile.startswith("private") and "immutable" in tile  # tiles: the browser keeps them, no proxy


def test_behind_an_https_proxy_browsers_are_told_to_stay_on_https(data_dir: Path, case: str) -> None:
    # X-Forwarded-Proto is believed from the configured proxy only (here a local one).
    server = start_server(data_dir, args=("--trusted-proxy", "127.0.0.1"))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    finally:
        stop_server(server)
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert "; secure" in answer.headers["set-cookie"].lower()


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    """What the CSP would block anyway, kept out of the source: only data blocks and our bundles."""
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'type="application/json"' in tag or "src=" in tag, f"{template.name}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template.name} has an inline event handler"
        assert not re.search(r"\sstyle\s*=", text), f"{template.name} has an inline style attribute"
        assert "<style" not in text, f"{template.name} has an inline stylesheet"
        assert "javascript:" not in text.lower(), template.name


def test_a_websocket_opened_from_another_site_is_refused(server: Server) -> None:
    """Cross-site websocket hijacking: the visitor's cookie must not open the case for another site."""
    person = sign_in_with_form(server, "north.path")
    cookie = "; ".join(f"{name}={value}" for name, value in person.client.cookies.items())
    url = server.url.replace("http://", "ws://") + f"/ws/cases/{_case_id(server)}"
    host = server.url.removeprefix("http://")

    async def connect(origin: str) -> int:
        try:
            async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin}):
                return 101
        except websockets.InvalidStatus as refused:
            return refused.response.status_code

    assert asyncio.run(connect("https://evil.example")) == 403
    assert asyncio.run(connect(f"http://{host}")) == 101  # our own pages
    person.client.close()


def test_secrets_are_kept_only_as_hashes_and_sessions_expire(server: Server) -> None:
    token = api_token(server.data_dir, "north.path")
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        form = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        signed = browser.post(
            "/login", data={"username": "north.path", "password": PASSWORD, "csrf": csrf[1]}
        )
        assert signed.status_code == 303
        session_id = browser.cookies["collab_session"].rpartition(".")[0]
        with connect_db(server.data_dir) as db:
            rows = [*db.execute("SELECT * FROM sessions"), *db.execute("SELECT * FROM api_tokens")]
            assert not any(token in str(v) or session_id in str(v) for row in rows for v in row)
            # The session ends when it expires, whatever the browser keeps.
            db.execute("UPDATE sessions SET expires = '2000-01-01T00:00:00+00:00'")
        expired = browser.get("/")
        assert (expired.status_code, expired.headers["location"]) == (303, "/login?next=/")


def test_sql_metacharacters_are_data_and_methods_are_only_those_of_the_route(server: Server) -> None:
    """Every query is parameterised: quotes and comments are stored and shown as given."""
    name = "Robert'); DROP TABLE cases;-- \" OR 1=1"
    made = collab(
        "cases", "add", "S26-7", "--org", "North Trust", "--patient-name", name, data_dir=server.data_dir
    )
    assert made.returncode == 0, made.stderr
    with connect_db(server.data_dir) as db:
        (case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'S26-7'").fetchone()
    shown = server.client.get(f"/api/cases/{case_id}")
    assert shown.status_code == 200 and shown.json()["patient"]["name"] == name
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        form = anonymous.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        sneaky = anonymous.post(
            "/login", data={"username": "' OR '1'='1' --", "password": "' OR '1'='1", "csrf": csrf[1]}
        )
        assert sneaky.status_code != 303 and "collab_session" not in sneaky.cookies
    # A route answers only its own methods.
    for method, path in (("DELETE", f"/cases/{case_id}"), ("PUT", "/login"), ("POST", "/healthz")):
        assert server.client.request(method, path).status_code == 405, (method, path)
