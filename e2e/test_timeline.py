"""Catch-up in real Chromium: a late joiner replays where the presenter went and what was drawn when."""

from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, draw_rectangle, open_case, same_view, settled_view


def test_a_late_joiner_replays_the_presenters_path(session: E2ESession) -> None:
    presenter = session.person("north.path")
    open_case(presenter, session)
    presenter.locator("#present").click()

    # The tour: zoom into slide 1, draw there, then show slide 2.
    presenter.locator("#viewer").hover()
    presenter.mouse.wheel(0, -600)
    first_stop = settled_view(presenter)
    draw_rectangle(presenter, (150, 150), (320, 260))
    expect(presenter.locator("#annotation-list li[data-annotation-id]")).to_have_count(1)
    second_slide = presenter.locator(".slide-strip a[data-slide-id]").nth(1)
    second_slide.click()
    presenter.wait_for_function(
        "(id) => window.collab.slideView.view()?.slide === id",
        arg=second_slide.get_attribute("data-slide-id"),
        timeout=TIMEOUT_MS,
    )
    second_stop = settled_view(presenter)

    # Someone who was not there opens the case afterwards and catches up.
    late = session.person("north.trainee")
    open_case(late, session)
    late.locator("#timeline-toggle").click()
    timeline = late.locator("#timeline")
    expect(timeline).to_be_visible()
    events = timeline.locator(".events li")
    expect(events.filter(has_text="Dr North showed Slide 1")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(events.filter(has_text="Dr North showed Slide 2")).to_have_count(1)
    expect(events.filter(has_text="Dr North drew a rect on Slide 1")).to_have_count(1)

    # To the moment of the drawing: slide 1 as zoomed into; rewound to the start, not drawn yet.
    events.filter(has_text="Dr North drew").locator("button").click()
    same_view(late, first_stop)
    expect(late.locator("#annotation-list li[data-annotation-id]")).to_have_count(1)
    late.locator("#timeline .scrub").fill("0")
    expect(late.locator("#annotation-list li[data-annotation-id]")).to_have_count(0)

    # Played to the end, the replay finishes where the presenter stopped; "Back to live" leaves it.
    late.locator("#timeline .play").click()
    expect(late.locator("#timeline .play")).to_have_text("Play", timeout=TIMEOUT_MS)
    same_view(late, second_stop)
    late.locator("#timeline .close").click()
    expect(timeline).to_be_hidden()
