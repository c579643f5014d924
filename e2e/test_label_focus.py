"""Labelling an annotation: Enter gives the keys back to the slide (the next shortcut is not
typed into the label), and a label typed for one annotation never lands on another."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, draw_rectangle, open_case


def labels(page) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(
        page.evaluate("[...window.collab.annotations.map.values()].map((a) => a.get('label') || '')")
    )


def test_enter_returns_the_keys_to_the_slide_and_labels_stay_with_their_annotation(
    session: E2ESession,
) -> None:
    page = session.person("north.path")
    open_case(page, session)
    label = page.locator("#annotation-editor [name=label]")

    draw_rectangle(page, (150, 150), (260, 230))
    label.fill("Tumour")
    label.press("Enter")
    expect(label).not_to_be_focused()
    page.keyboard.press("l")  # the ruler's shortcut: a tool, not a letter in the label
    expect(page.locator("[data-tool=line]")).to_have_attribute("aria-pressed", "true")
    expect(label).to_have_value("Tumour")

    # Typing a label, then drawing the next shape without pressing Enter.
    draw_rectangle(page, (300, 150), (380, 230))
    label.fill("Necrosis")
    label.press("Enter")
    draw_rectangle(page, (150, 300), (260, 380))
    label.click()
    label.fill("Lymph node")
    draw_rectangle(page, (300, 300), (380, 380))  # the label box loses focus on the canvas
    expect(label).to_have_value("", timeout=TIMEOUT_MS)  # the new one has no label yet
    page.wait_for_function("() => [...window.collab.annotations.map.values()].length === 4")
    assert labels(page) == ["", "Lymph node", "Necrosis", "Tumour"]
