"""A slide from the PACS, live across two trusts, in real Chromium: a real Orthanc (DICOMweb)
holds a whole-slide series under an accession number, and a real OpenID provider signs in both
trusts' people. North's pathologist signs in through their trust, finds the series from the
case page, attaches it and opens it; a colleague from South Trust, signed in through theirs,
joins the case live and is served the very same tiles, read frame by frame from the PACS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from e2e.conftest import E2ESession
from tests.conftest import collab
from tests.oidc_provider import start_provider, trust_config
from tests.orthanc import Orthanc, available, new_orthanc
from tests.test_pacs_search import SHARED, relabelled

TIMEOUT_MS = 20_000
ACCESSION = "S26-PACS-1"
SLIDE = SHARED / "dicom-cmu-1-small-region"

pytestmark = [
    pytest.mark.skipif(not SLIDE.is_dir(), reason="../shared/slides is not here"),
    pytest.mark.skipif(not available(), reason="Orthanc with its DICOMweb plugin is not installed"),
]


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    pacs = new_orthanc(tmp_path / "orthanc")
    try:
        pacs.upload(relabelled(SLIDE, tmp_path / "relabelled", ACCESSION))
        yield pacs
    finally:
        pacs.stop()


def sign_in_at_trust(session: E2ESession, trust: str, account: str) -> Page:
    """A new browser whose person signs in with their trust's button and their trust's page."""
    page = session.new_context(account, viewport={"width": 1366, "height": 768}).new_page()
    session.pages.setdefault(account, []).append(page)
    page.goto("/login")
    page.screenshot(path=Path("test-results") / "sign-in-1366x768.png")
    page.get_by_role("link", name=f"Sign in with {trust}").click()
    page.get_by_label("Account").fill(account)
    page.get_by_role("button", name="Sign in at the trust").click()
    expect(page).to_have_url(f"{session.url}/", timeout=TIMEOUT_MS)
    return page


def _tiles_of(page: Page, store: dict[str, bytes]) -> None:
    def keep(response: Response) -> None:
        if "_files/" in response.url and response.status == 200:
            store[response.url.split("/slides/", 1)[1]] = response.body()

    page.on("response", keep)


def test_signed_in_by_their_trusts_they_find_a_slide_in_the_pacs_and_look_at_it_together(
    session: E2ESession, orthanc: Orthanc, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    provider = start_provider(tmp_path / "provider", session.url)
    request.addfinalizer(provider.stop)
    config = tmp_path / "collab.toml"
    pacs = f'[[pacs]]\nname = "North PACS"\nurl = "{orthanc.dicomweb}"\norg = "North Trust"\n'
    config.write_text(pacs + trust_config(session.url, provider.issuer))
    session.restart(("--config", str(config)))
    assert collab("orgs", "add", "South Trust", data_dir=session.data_dir).returncode == 0
    shared = collab("cases", "share", "S26-1", "--org", "South Trust", data_dir=session.data_dir)
    assert shared.returncode == 0, shared.stderr

    north = sign_in_at_trust(session, "North Trust", "ada")
    north.set_viewport_size({"width": 1366, "height": 768})
    north.goto(f"/cases/{session.case_id}")
    with north.expect_navigation():
        north.get_by_role("link", name="Add from the PACS").click()
    north.get_by_label("Accession number or patient ID").fill(ACCESSION)
    with north.expect_navigation():
        north.get_by_role("button", name="Search North PACS").click()
    found = north.locator(".pacs-results li")
    expect(found).to_have_count(1)
    expect(found).to_contain_text(ACCESSION)
    overview = found.locator("img")
    expect(overview).to_have_js_property("complete", True, timeout=TIMEOUT_MS)
    assert overview.evaluate("img => img.naturalWidth") > 0, "the series' overview did not load"
    north.screenshot(path=Path("test-results") / "pacs-search-1366x768.png")

    north_tiles: dict[str, bytes] = {}
    _tiles_of(north, north_tiles)
    found.get_by_label("Stain").fill("H&E")
    with north.expect_navigation():
        found.get_by_role("button", name="Attach to S26-1").click()
    slide_id = north.url.split("slide=")[1]
    expect(north.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)

    south = sign_in_at_trust(session, "South Trust", "sam")
    south.set_viewport_size({"width": 1366, "height": 768})
    south_tiles: dict[str, bytes] = {}
    _tiles_of(south, south_tiles)
    south.goto(f"/cases/{session.case_id}?slide={slide_id}")
    expect(south.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(south.locator("#presence")).to_contain_text("Dr Ada North", timeout=TIMEOUT_MS)
    expect(north.locator("#presence")).to_contain_text("Dr Sam South", timeout=TIMEOUT_MS)
    south.screenshot(path=Path("test-results") / "pacs-colleague-1366x768.png")
    # The case is shared with South; North's PACS, which holds every North patient, is not.
    expect(south.get_by_role("link", name="Add from the PACS")).to_have_count(0)

    # The same slide in the same place: the tiles both were served are the same bytes.
    both = sorted(set(north_tiles) & set(south_tiles))
    assert both and all(k.startswith(f"{slide_id}_files/") for k in both), (
        north_tiles.keys(),
        south_tiles.keys(),
    )
    assert all(north_tiles[k] == south_tiles[k] for k in both)
