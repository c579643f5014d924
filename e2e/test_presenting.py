"""Presenting, discussion, undo and read-only participation, in real Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, at_viewer, draw_rectangle, open_case, same_view, settled_view


def test_presenter_hand_over_take_back_and_bring_everyone_here(session: E2ESession) -> None:
    a = session.person("north.path")
    b = session.person("north.trainee")
    a_id = open_case(a, session)
    b_id = open_case(b, session)

    a.locator("#present").click()
    expect(b.locator(f"#presence li[data-client-id='{a_id}'] .badge")).to_have_text(
        "presenting", timeout=TIMEOUT_MS
    )

    # B asks: A sees the request over the slide and declines it; B is told.
    b.locator("#ask-to-present").click()
    request = a.locator(f"#present-requests .present-request[data-client-id='{b_id}']")
    expect(request).to_contain_text("North Trainee asks to present.", timeout=TIMEOUT_MS)
    request.locator("button.decline").click()
    expect(request).to_have_count(0)
    expect(b.locator("#ask-declined")).to_contain_text("declined your request to present", timeout=TIMEOUT_MS)
    expect(b.locator("#ask-to-present")).to_have_text("Ask to present")

    # B asks again: A accepts, B presents, and A follows B without a click.
    b.locator("#ask-to-present").click()
    expect(b.locator("#ask-declined")).to_have_count(0)
    request.locator("button.accept").click(timeout=TIMEOUT_MS)
    expect(a.locator(f"#presence li[data-client-id='{b_id}'] .badge")).to_have_text(
        "presenting", timeout=TIMEOUT_MS
    )
    expect(b.locator("#bring-everyone")).to_be_visible()
    expect(a.locator(f"#presence li[data-client-id='{a_id}'] .badge")).to_have_count(0)
    expect(a.locator(f"#presence li[data-client-id='{b_id}'] button.follow")).to_have_text("Stop following")
    b.locator("#viewer").hover()
    b.mouse.wheel(0, -400)
    same_view(a, settled_view(b))

    # A takes it back.
    a.locator("#take-back").click()
    expect(b.locator(f"#presence li[data-client-id='{a_id}'] .badge")).to_have_text(
        "presenting", timeout=TIMEOUT_MS
    )
    expect(b.locator(f"#presence li[data-client-id='{b_id}'] .badge")).to_have_count(0)

    # A zooms somewhere and brings everyone there: B now follows A.
    a.locator("#viewer").hover()
    a.mouse.wheel(0, -600)
    view = settled_view(a)
    a.locator("#bring-everyone").click()
    same_view(b, view)
    expect(b.locator(f"#presence li[data-client-id='{a_id}'] button.follow")).to_have_text("Stop following")


def test_discussion_undo_labels_and_read_only_people(session: E2ESession) -> None:
    a = session.person("north.path")
    clinician = session.person("north.onc")
    open_case(a, session)
    open_case(clinician, session)

    # Undo and redo one's own drawing.
    draw_rectangle(a, (150, 150), (320, 260))
    items = a.locator("#annotation-list li[data-annotation-id]")
    expect(items).to_have_count(1)
    a.locator("#viewer").click(position={"x": 5, "y": 5})  # focus on the page, not a field
    a.keyboard.press("Control+z")
    expect(items).to_have_count(0)
    a.keyboard.press("Control+Shift+z")
    expect(items).to_have_count(1)
    expect(clinician.locator("#annotation-list li[data-annotation-id]")).to_have_count(1, timeout=TIMEOUT_MS)

    # Select it by clicking inside it, label it, and write about it in the discussion.
    a.locator("[data-tool=select]").click()
    a.mouse.click(*at_viewer(a, 235, 205))
    expect(a.locator("#annotation-editor")).to_be_visible()
    expect(items.first).to_have_attribute("aria-current", "true")
    a.locator("#annotation-editor [name=label]").fill("Invasive front")
    a.locator("#annotation-editor [name=label]").press("Enter")
    expect(clinician.locator("#annotation-list li .title")).to_have_text("Invasive front", timeout=TIMEOUT_MS)
    a.locator("#message-form textarea").fill("Margin clear here — 2 mm.")
    a.locator("#message-form [name=about]").check()
    a.locator("#message-form button[type=submit]").click()
    message = clinician.locator("#messages li.message")
    expect(message).to_have_count(1, timeout=TIMEOUT_MS)
    expect(message).to_contain_text("Dr North")
    expect(message).to_contain_text("Margin clear here — 2 mm.")
    expect(message.locator(".about-annotation")).to_contain_text("Invasive front")

    # A clinician follows along read-only: no drawing tools, no delete; but they take part in
    # the discussion (an oncologist at an MDT does), and the pathologist sees the reply.
    expect(clinician.locator("[data-tool=rect]")).to_have_count(0)
    expect(clinician.locator("#message-why")).to_be_hidden()
    clinician.locator("#message-form textarea").fill("Fit for breast-conserving surgery?")
    clinician.locator("#message-form button[type=submit]").click()
    expect(a.locator("#messages li.message")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(a.locator("#messages li.message").last).to_contain_text("Dr Oncology")
    expect(clinician.locator("#connection")).to_have_attribute("data-state", "connected")
    clinician.locator("#annotation-list li button").first.click()
    expect(clinician.locator("#annotation-editor .delete")).to_be_hidden()
    expect(clinician.locator("#annotation-editor [name=label]")).to_be_disabled()

    # The keyboard shortcuts are listed on "?".
    a.locator("#viewer").click(position={"x": 5, "y": 5})
    a.keyboard.press("?")
    expect(a.locator("#shortcuts")).to_be_visible()
    expect(a.locator("#shortcuts")).to_contain_text("Rotate 90°")
    a.keyboard.press("Escape")
    expect(a.locator("#shortcuts")).to_be_hidden()
    # Measurements: a ruler shows its length once drawn.
    a.locator("[data-tool=line]").click()
    a.mouse.move(*at_viewer(a, 100, 400))
    a.mouse.down()
    a.mouse.move(*at_viewer(a, 400, 400), steps=4)
    a.mouse.up()
    expect(a.locator("#annotation-list li[data-kind=line] .meta")).to_contain_text(" µm")
    # The slide knows its pixel size (0.25 µm): a scale bar in µm or mm.
    expect(a.locator("#scale-bar")).to_be_visible()
    expect(a.locator("#scale-bar .label")).to_have_text(re.compile(r"^\d+(\.\d+)? (µm|mm)$"))


def test_read_only_people_are_told_why_they_cannot_present_until_handed_over(session: E2ESession) -> None:
    a = session.person("north.path")
    clinician = session.person("north.onc")  # reads the case
    a_id = open_case(a, session)
    c_id = open_case(clinician, session)
    why = "Read-only participants can't present; ask the presenter to hand over."

    # Shown, disabled, with the reason: not just missing.
    expect(clinician.locator("#present")).to_be_disabled()
    expect(clinician.locator("#bring-everyone")).to_be_disabled()
    expect(clinician.locator("#present-why")).to_have_text(why)
    expect(a.locator("#present")).to_be_enabled()
    expect(a.locator("#present-why")).to_have_count(0)
    # A page made to present anyway reaches the others as not presenting.
    clinician.evaluate(
        "() => { const a = window.collab.awareness;"
        " a.setLocalState({...a.getLocalState(), presenting: true, probe: 1}); }"
    )
    a.wait_for_function(f"(window.collab.presence.state({c_id}) || {{}}).probe === 1", timeout=TIMEOUT_MS)
    assert a.evaluate(f"window.collab.presence.state({c_id}).presenting") is False
    clinician.evaluate("window.collab.awareness.setLocalStateField('presenting', false)")

    # Handed over, they present (and may bring everyone); taken back, they are told why again.
    a.locator("#present").click()
    expect(clinician.locator(f"#presence li[data-client-id='{a_id}'] .badge")).to_have_text(
        "presenting", timeout=TIMEOUT_MS
    )
    clinician.locator("#ask-to-present").click()
    a.locator(f"#present-requests .present-request[data-client-id='{c_id}'] button.accept").click(
        timeout=TIMEOUT_MS
    )
    expect(a.locator(f"#presence li[data-client-id='{c_id}'] .badge")).to_have_text(
        "presenting", timeout=TIMEOUT_MS
    )
    expect(clinician.locator("#bring-everyone")).to_be_enabled()
    expect(clinician.locator("#present-why")).to_have_count(0)
    a.locator("#take-back").click()
    expect(clinician.locator(f"#presence li[data-client-id='{c_id}'] .badge")).to_have_count(
        0, timeout=TIMEOUT_MS
    )
    expect(clinician.locator("#present-why")).to_have_text(why)
