"""Magnification presets and readout when the file gives its resolution but not its objective
(the demo and most generic TIFFs): an equivalent from the pixel size, marked as such; keys
1-7 go to the presets. A slide with neither shows none."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, click_tool, open_case


def test_presets_from_the_resolution_are_marked_equivalent_and_the_keys_work(session: E2ESession) -> None:
    page = session.person("north.path")
    open_case(page, session, session.slide_ids[0])  # 0.25 µm/px, no objective power
    presets = page.locator("#magnifications button")
    expect(presets.first).to_have_text("≈1.25×", timeout=TIMEOUT_MS)
    expect(page.locator("#magnifications button[data-magnification='40']")).to_have_text("≈40×")
    page.locator("#viewer").click()
    page.keyboard.press("5")  # the fifth preset: 20×
    expect(page.locator("#magnification")).to_have_text("≈20×", timeout=TIMEOUT_MS)
    # On a laptop-sized window the presets sit in the toolbar's "More" menu.
    click_tool(page, "#magnifications button[data-magnification='40']")
    expect(page.locator("#toolbar-more")).to_be_hidden()  # a tool chosen from the menu closes it
    expect(page.locator("#magnification")).to_have_text("≈40×", timeout=TIMEOUT_MS)

    open_case(page, session, session.slide_ids[1])  # neither resolution nor objective
    expect(page.locator("#magnifications")).to_be_hidden()
    expect(page.locator("#magnification")).to_have_text("")
