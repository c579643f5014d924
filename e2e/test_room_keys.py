"""The chair steps the agenda from the keyboard or a presentation clicker: N / P and the
arrows in the room, PageDown / PageUp with the slide in focus too; an attendee's keys step
nothing."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_meeting import add_case, expect_case_on_screen
from e2e.test_session import TIMEOUT_MS
from tests.conftest import add_user, collab


def test_the_chair_steps_by_keys_and_clicker_and_an_attendee_cannot(
    session: E2ESession, slide_files: list[Path]
) -> None:
    add_user(session.data_dir, "north.coord", "clinician", "North Trust", "--name", "Ms Coordinator")
    add_case(session, "S26-2", slide_files[1], "Jean Price", "Screen-detected, 14 mm.")
    made = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2030-06-04T13:00",
        "--chair", "north.path", "--coordinator", "north.coord", "--attendee", "north.onc",
        "--case", "S26-1", "--case", "S26-2", data_dir=session.data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    room = f"/meetings/{made.stdout.strip()}/room"
    chair, attendee = session.person("north.path"), session.person("north.onc")
    for page in (chair, attendee):
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(room)
        expect(page.locator("#room-link")).to_have_text("Live", timeout=TIMEOUT_MS)

    attendee.locator("body").press("n")  # no steps for an attendee: nothing happens
    chair.locator("body").press("n")
    expect_case_on_screen(chair, 1, "S26-1")
    expect_case_on_screen(attendee, 1, "S26-1")
    chair.locator("body").press("ArrowRight")
    expect_case_on_screen(chair, 2, "S26-2")
    chair.locator("body").press("p")
    expect_case_on_screen(chair, 1, "S26-1")

    # A clicker with the slide in focus: the embedded case page passes PageDown on.
    frame = chair.frame_locator("#case-frame")
    frame.locator("#viewer").click()
    frame.locator("#viewer").press("PageDown")
    expect_case_on_screen(chair, 2, "S26-2")
    frame.locator("#viewer").press("PageUp")
    expect_case_on_screen(chair, 1, "S26-1")
    expect_case_on_screen(attendee, 1, "S26-1")
