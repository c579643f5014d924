"""The viewer draws a slide for a pathologist signed in through the real login form."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import E2ESession


def test_pathologist_sees_first_tile(session: E2ESession) -> None:
    page = session.person("north.path")
    page.goto(f"/cases/{session.case_id}")
    expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=15000)
