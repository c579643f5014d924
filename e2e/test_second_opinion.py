"""A second opinion in real Chromium: asked in the north, answered in the south, access gone after."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from tests.conftest import add_user, collab

TIMEOUT_MS = 15_000
QUESTION = "Invasive or in situ? Please look at the margin in slide 2."
OPINION = "Invasive ductal carcinoma, grade 2; the margin in slide 2 is clear."


def test_second_opinion_from_another_trust(session: E2ESession) -> None:
    assert collab("orgs", "add", "South Trust", data_dir=session.data_dir).returncode == 0
    add_user(session.data_dir, "south.path", "pathologist", "South Trust", "--name", "Dr South")
    case_url = f"/cases/{session.case_id}"

    north = session.person("north.path")
    north.set_viewport_size({"width": 1400, "height": 900})
    north.goto(case_url)
    ask = north.locator("form.opinion-form")
    ask.locator("input[name=to]").fill("south.path")
    ask.locator("textarea[name=question]").fill(QUESTION)
    ask.locator("input[name=urgent]").check()
    with north.expect_navigation():
        ask.locator("button[type=submit]").click()
    asked = north.locator("#opinions li[data-opinion-id]")
    expect(asked).to_have_count(1)
    expect(asked).to_have_attribute("data-state", "requested")
    expect(asked).to_contain_text("Asked of Dr South")
    expect(asked).to_contain_text(QUESTION)

    # South's worklist opens with the request, above the cases.
    south = session.person("south.path")
    south.set_viewport_size({"width": 1400, "height": 900})
    expect(south.locator("main h2").first).to_have_text("Opinions requested from you")
    row = south.locator(".opinion-requests tr[data-opinion-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("S26-1")
    expect(row).to_contain_text("Dr North")
    expect(row).to_contain_text("North Trust")
    expect(row).to_contain_text(QUESTION)
    expect(row).to_contain_text("urgent")

    # Accepting opens the case: the slide, and the live session with the requester in it.
    with south.expect_navigation():
        row.get_by_role("button", name="Accept").click()
    expect(south.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(south.locator("#presence")).to_contain_text("Dr North", timeout=TIMEOUT_MS)
    expect(south.locator(".live-note")).to_contain_text("You are in the live session of this case")

    answer = south.locator("form.answer-form")
    answer.locator("textarea[name=opinion]").fill(OPINION)
    south.once("dialog", lambda dialog: dialog.accept())  # "Send this opinion?" (data-confirm)
    with south.expect_navigation():
        answer.get_by_role("button", name="Answer").click()
    expect(south.locator(".opinion-requests")).to_have_count(0)  # nothing left to answer

    north.reload()
    answered = north.locator("#opinions li[data-opinion-id]")
    expect(answered).to_have_attribute("data-state", "answered")
    expect(answered.locator("blockquote.opinion")).to_have_text(OPINION)
    expect(answered).to_contain_text("Opinion of Dr South")

    # The case was South's only while the request was open: now they are told it has ended.
    response = south.goto(case_url)
    assert response is not None and response.status == 403
    expect(south.locator("body")).to_contain_text("Your access to this case has ended")
