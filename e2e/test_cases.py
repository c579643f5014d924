"""A pathologist creates a case in the browser, finds it in the worklist by NHS number, moves
it to "ready for MDT" and adds a note."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS

# Set COLLAB_SCREENSHOTS to a folder to keep a picture of each page (at 1366x768) for review.
SHOTS = os.environ.get("COLLAB_SCREENSHOTS")


def test_a_pathologist_creates_finds_moves_and_notes_a_case(session: E2ESession) -> None:
    page = session.person("north.path")
    page.set_viewport_size({"width": 1366, "height": 768})

    def shot(name: str) -> None:
        if SHOTS:
            page.screenshot(path=Path(SHOTS) / f"{name}.png")

    page.get_by_role("link", name="New case").click()
    expect(page.get_by_role("heading", name="New case")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_label("Accession number").fill("S26-4242")
    page.get_by_label("Priority").select_option("2ww")
    page.get_by_label("Name").fill("Joan Whitfield")
    page.get_by_label("NHS number").fill("401 023 2137")
    page.get_by_label("Date of birth").fill("1961-07-02")
    page.get_by_label("Specimen").fill("Left breast core biopsy")
    shot("case-new")
    page.get_by_role("button", name="Create the case").click()
    expect(page.get_by_role("heading", name="S26-4242")).to_be_visible(timeout=TIMEOUT_MS)

    page.goto("/")
    page.get_by_label("Search cases").fill("4010232137")
    page.get_by_label("Search cases").press("Enter")
    rows = page.locator("table.worklist tbody tr")
    expect(rows).to_have_count(1, timeout=TIMEOUT_MS)
    expect(rows.first).to_contain_text("Joan Whitfield")
    shot("worklist-search")
    rows.first.get_by_role("link", name="S26-4242").click()

    work = page.locator("section.case-work")
    work.get_by_role("button", name="Move to “in review”").click()
    expect(work.locator(".case-status")).to_have_text("in review", timeout=TIMEOUT_MS)
    work.get_by_role("button", name="Move to “ready for MDT”").click()
    expect(work.locator(".case-status")).to_have_text("ready for MDT", timeout=TIMEOUT_MS)
    work.get_by_label("Add a note").fill("For the Tuesday breast MDT: discuss the margins.")
    work.get_by_role("button", name="Add the note").click()
    expect(work.locator(".case-notes li")).to_contain_text(
        "For the Tuesday breast MDT: discuss the margins.", timeout=TIMEOUT_MS
    )
    expect(work.locator(".case-notes li")).to_contain_text("Dr North")
    page.evaluate("window.scrollTo(0, 0)")
    shot("case-work")
    page.goto("/", wait_until="load")
    page.get_by_label("Search cases").fill("Whitfield")
    page.get_by_label("Search cases").press("Enter")
    expect(page.locator("table.worklist tbody tr").first).to_contain_text("ready for MDT", timeout=TIMEOUT_MS)
    # Choosing a sort shows the list at once, keeping the search.
    page.get_by_label("Sort by").select_option("accession")
    expect(page).to_have_url(re.compile(r"sort=accession"), timeout=TIMEOUT_MS)
    expect(page.get_by_label("Search cases")).to_have_value("Whitfield")
