"""A live MDT meeting in real Chromium: the chair steps through a three-case agenda, everyone's
room follows, the coordinator records outcomes, the chair signs them off, the summary prints.

The MDT: the chair is North's consultant pathologist (Dr North), the coordinator North's MDT
coordinator, and the oncologist comes from another trust (South), so the agenda cases reach
her only through the meeting's shares (read-only).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Frame, Page, expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, draw_rectangle, open_case
from tests.conftest import add_slides, add_user, collab

REGION = "Invasive front"
OUTCOMES = (
    ("surgery", "Wide local excision and sentinel node biopsy."),
    ("oncology", "Neoadjuvant chemotherapy."),
    ("further investigation", "MRI of both breasts."),
)


def add_case(session: E2ESession, accession: str, slide: Path, patient: str, details: str) -> None:
    made = collab(
        "cases",
        "add",
        accession,
        "--org",
        "North Trust",
        "--patient-name",
        patient,
        "--clinical-details",
        details,
        data_dir=session.data_dir,
    )
    assert made.returncode == 0, made.stderr
    add_slides(session.data_dir, slide, accession=accession)


def case_frame(page: Page) -> Frame:
    """The embedded case page of a meeting room."""
    handle = page.locator("#case-frame").element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def expect_case_on_screen(page: Page, position: int, accession: str) -> None:
    """The room shows that case: in its heading, the agenda, and the live case page beside."""
    expect(page.locator("#now-title")).to_have_text(f"{position}. {accession}", timeout=TIMEOUT_MS)
    expect(page.locator("#room-agenda li[aria-current] > :first-child")).to_have_text(accession)
    frame = page.frame_locator("#case-frame")
    expect(frame.locator("h1")).to_have_text(accession, timeout=TIMEOUT_MS)
    expect(frame.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(frame.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)


def settled_view(frame: Frame) -> dict[str, float]:
    frame.wait_for_function(
        """() => { const vp = window.collab.viewer.viewport;
            return Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-6
                && vp.getCenter(true).distanceTo(vp.getCenter(false)) < 1e-6; }""",
        timeout=TIMEOUT_MS,
    )
    return dict(frame.evaluate("window.collab.slideView.view()"))


def looks_at(frame: Frame, view: dict[str, float]) -> None:
    """Wait until the embedded case page looks where ``view`` says (within 1% of the field)."""
    frame.wait_for_function(
        """(want) => {
            const v = window.collab && window.collab.slideView.view();
            const near = (a, b) => Math.abs(a - b) < want.width / 100;
            return v && v.slide === want.slide
                && near(v.x, want.x) && near(v.y, want.y) && near(v.width, want.width);
        }""",
        arg=view,
        timeout=TIMEOUT_MS,
    )


def test_an_mdt_meeting_in_the_live_room(session: E2ESession, slide_files: list[Path]) -> None:
    data_dir = session.data_dir
    add_user(data_dir, "north.coord", "clinician", "North Trust", "--name", "Ms Coordinator")
    assert collab("orgs", "add", "South Trust", data_dir=data_dir).returncode == 0
    add_user(data_dir, "south.onc", "clinician", "South Trust", "--name", "Dr South Oncology")
    add_case(session, "S26-2", slide_files[1], "Jean Price", "Screen-detected, 14 mm, ER positive.")
    add_case(session, "S26-3", slide_files[0], "Ann Moss", "Axillary lymphadenopathy.")
    accessions = ("S26-1", "S26-2", "S26-3")
    made = collab(
        "meetings",
        "add",
        "Breast MDT",
        "--org",
        "North Trust",
        "--starts",
        "2026-12-01T13:00",
        "--chair",
        "north.path",
        "--coordinator",
        "north.coord",
        "--attendee",
        "south.onc",
        *[arg for accession in accessions for arg in ("--case", accession)],
        data_dir=data_dir,
    )
    assert made.returncode == 0, made.stderr
    room = f"/meetings/{made.stdout.strip()}/room"

    # Before the meeting the pathologist bookmarks a region of the first case for it.
    chair = session.person("north.path")
    open_case(chair, session)
    draw_rectangle(chair, (300, 250), (420, 330))
    chair.locator("#annotation-editor [name=label]").fill(REGION)
    chair.locator("#annotation-editor [name=label]").press("Enter")
    chair.locator("#annotation-editor [name=bookmark]").check()
    expect(chair.locator("#regions button")).to_have_text(f"1 · {REGION}")

    coordinator = session.person("north.coord")
    oncologist = session.person("south.onc")
    people = (chair, coordinator, oncologist)
    for page in people:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(room)
        expect(page.locator("#room-link")).to_have_text("Live", timeout=TIMEOUT_MS)
    for page in people:
        expect(page.locator("#room-people li[data-status=here]")).to_have_count(3, timeout=TIMEOUT_MS)
    expect(oncologist.locator("#steps")).to_have_count(0)  # an attendee watches; she does not step
    expect(oncologist.locator("#outcome-form")).to_have_count(0)

    for position, (accession, (decision, notes)) in enumerate(
        zip(accessions, OUTCOMES, strict=True), start=1
    ):
        chair.locator("#next").click()
        for page in people:
            expect_case_on_screen(page, position, accession)
        expect(oncologist.locator("#now-timer")).to_have_text(re.compile(r"^\d+:\d\d of 3 min$"))
        # The oncologist from the other trust sees the patient and the clinical details.
        summary = oncologist.locator(".case-summary:not([hidden])")
        if position == 2:
            expect(summary).to_contain_text("Jean Price")
            expect(summary).to_contain_text("Screen-detected, 14 mm, ER positive.")

        if position == 1:
            # The followers follow the chair into the bookmarked region.
            chair_frame, followers = case_frame(chair), [case_frame(p) for p in (coordinator, oncologist)]
            for frame in followers:
                frame.wait_for_function("window.collab && window.collab.presence.following !== null")
            chair.frame_locator("#case-frame").get_by_role("button", name=f"1 · {REGION}").click()
            view = settled_view(chair_frame)
            assert view["width"] < 2000  # zoomed in on the region (the whole slide is 4,000 px wide)
            for frame in followers:
                looks_at(frame, view)

        # The coordinator records the outcome; everyone sees it at once; the chair signs it off.
        form = coordinator.locator("#outcome-form")
        form.get_by_role("checkbox", name=decision, exact=True).check()
        form.locator("textarea[name=notes]").fill(notes)
        form.get_by_role("button", name="Record outcome").click()
        for page in people:
            expect(page.locator("#now-outcome")).to_contain_text(
                f"Outcome: {decision}: {notes}", timeout=TIMEOUT_MS
            )
        expect(chair.locator("#sign-off")).to_be_visible()
        chair.locator("#sign-off").click()
        for page in people:
            expect(page.locator("#now-outcome .signed-off")).to_have_text(
                "signed off by Dr North", timeout=TIMEOUT_MS
            )
            expect(page.locator(f"#room-agenda li:nth-child({position}) .decision")).to_have_text(
                f"{decision} · signed off"
            )
        expect(coordinator.locator("#outcome-form")).to_be_hidden()  # final once signed off

    expect(chair.locator("#next")).to_be_disabled()  # the end of the agenda
    expect(oncologist.locator("#room-agenda li:nth-child(1) .time")).to_contain_text("spent (3 min planned)")

    chair.goto(room.replace("/room", "/summary"))
    rows = chair.locator("tr.outcome-row")
    expect(rows).to_have_count(3)
    for row, accession, (decision, notes) in zip(rows.all(), accessions, OUTCOMES, strict=True):
        expect(row).to_contain_text(accession)
        expect(row).to_contain_text(decision)
        expect(row).to_contain_text(notes)
        expect(row.locator(".signed-off")).to_contain_text("Dr North")
        expect(row.locator(".time-spent")).to_have_text(re.compile(r"^\d+:\d\d \(3 min\)$"))
