"""An MDT coordinator prepares and runs a meeting in the browser alone (the command line only
seeds trusts, people and cases): arranges next Tuesday's Breast MDT, builds a ten-case agenda
from two trusts, reorders it by dragging and by keyboard, invites a surgeon of another trust
through the people picker (who then opens the room), records two decisions for a case, the
chair signs off, and the summary shows the patients and prints."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS
from tests.conftest import add_user, collab

CASES = [
    (f"BR26-{n:02d}", "North Trust" if n <= 5 else "South Trust", f"Patient {n:02d}") for n in range(1, 11)
]


def next_tuesday() -> str:
    today = datetime.now(ZoneInfo("Europe/London")).date()
    days = (1 - today.weekday()) % 7 or 7
    return (today + timedelta(days=days)).isoformat() + "T13:00"


def seed(session: E2ESession) -> None:
    """South Trust in North's network, the coordinator, a surgeon of South, ten cases; South's
    cases are open to North (as within a network)."""
    assert (
        collab("orgs", "add", "South Trust", "--network", "North", data_dir=session.data_dir).returncode == 0
    )
    add_user(session.data_dir, "north.coord", "admin", "North Trust", "--name", "Ms Coordinator")
    add_user(
        session.data_dir, "south.surgeon", "clinician", "South Trust", "--name", "Mr South Surgeon",
        "--specialty", "surgery",
    )  # fmt: skip
    for number, (accession, org, patient) in enumerate(CASES, start=1):
        made = collab(
            "cases", "add", accession, "--org", org, "--patient-name", patient,
            "--nhs-number", f"999 000 {number:04d}", data_dir=session.data_dir,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        if org == "South Trust":
            shared = collab("cases", "share", accession, "--org", "North Trust", data_dir=session.data_dir)
            assert shared.returncode == 0, shared.stderr


def pick(page: Page, field: str, typed: str, shown: str) -> None:
    """Type into a people picker, and choose the person from its list with the keyboard."""
    box = page.locator(f"input[name={field}][data-people-picker]")
    box.fill("")
    box.press_sequentially(typed)
    option = page.get_by_role("option", name=shown)
    expect(option).to_be_visible(timeout=TIMEOUT_MS)
    expect(box).to_have_attribute("aria-expanded", "true")
    while option.get_attribute("aria-selected") != "true":
        box.press("ArrowDown")
    box.press("Enter")
    expect(page.get_by_role("listbox")).to_be_hidden()


def agenda_order(page: Page) -> list[str]:
    return page.locator("ol.agenda > li").evaluate_all("items => items.map(li => li.dataset.caseId)")


def test_a_coordinator_prepares_and_runs_an_mdt_in_the_browser(session: E2ESession) -> None:
    seed(session)
    coord = session.person("north.coord")
    coord.set_viewport_size({"width": 1366, "height": 768})

    # Arrange next Tuesday's Breast MDT.
    coord.get_by_role("link", name="Meetings").click()
    coord.get_by_role("link", name="Arrange a meeting").click()
    coord.get_by_label("Name").fill("Breast MDT")
    coord.get_by_label("Date and time (UK local time, Europe/London)").fill(next_tuesday())
    pick(coord, "chair", "Dr North", "Dr North · pathologist · North Trust")
    expect(coord.locator("input[name=chair]")).to_have_value("north.path")
    with coord.expect_navigation():
        coord.get_by_role("button", name="Arrange the meeting").click()
    expect(coord.locator("h1")).to_have_text("Breast MDT")
    expect(coord.locator(".meeting-when")).to_contain_text("13:00 (UK local time)")
    meeting_url = coord.url

    # Ten cases from two trusts, each with its question and planned minutes.
    adder = coord.locator("form[data-agenda-add]")
    for number, (accession, _, patient) in enumerate(CASES, start=1):
        adder.locator("[data-case-search]").fill(accession)
        result = adder.locator("[data-case-results] button", has_text=accession)
        expect(result).to_contain_text(patient, timeout=TIMEOUT_MS)
        result.click()
        adder.get_by_label("MDT question").fill(f"Question for {accession}?")
        adder.get_by_label("Planned minutes").fill(str(2 + number % 4))
        with coord.expect_navigation():
            adder.get_by_role("button", name="Add to the agenda").click()
        expect(coord.locator("ol.agenda > li")).to_have_count(number)
    agenda = coord.locator("ol.agenda")
    expect(agenda.locator("li", has_text="Patient 07")).to_contain_text("Question for BR26-07?")
    case_ids = agenda_order(coord)

    # Reorder: drag the second case above the first, then move the fourth up with Alt+ArrowUp.
    # (Both cases in view: Chromium drops a drag that has to scroll the page.)
    items = agenda.locator("> li")
    items.nth(0).scroll_into_view_if_needed()
    items.nth(1).locator(".patient").drag_to(
        items.nth(0).locator(".patient"), target_position={"x": 5, "y": 1}
    )
    expect(agenda).to_have_attribute("data-saved", "1", timeout=TIMEOUT_MS)
    dragged = [case_ids[1], case_ids[0], *case_ids[2:]]
    assert agenda_order(coord) == dragged
    items.nth(3).focus()
    coord.keyboard.press("Alt+ArrowUp")
    expect(agenda).to_have_attribute("data-saved", "2", timeout=TIMEOUT_MS)
    final = [*dragged[:2], dragged[3], dragged[2], *dragged[4:]]
    coord.reload()
    assert agenda_order(coord) == final  # stored, not only shown

    # A surgeon of another trust, found through the picker, opens the room.
    pick(coord, "username", "South Surg", "Mr South Surgeon · clinician (surgery) · South Trust")
    with coord.expect_navigation():
        coord.get_by_role("button", name="Invite").click()
    expect(coord.locator("ul.attendees")).to_contain_text("Mr South Surgeon")
    surgeon = session.person("south.surgeon")
    surgeon.goto(meeting_url + "/room")
    expect(surgeon.locator(".room h1")).to_have_text("Breast MDT")
    expect(surgeon.locator("#room-agenda li")).to_have_count(10)

    # Run it: the first case on screen, two decisions recorded, the chair signs off.
    coord.goto(meeting_url + "/room")
    coord.get_by_role("button", name="Next case").click()
    expect(coord.locator("#now-title")).to_contain_text("1. ", timeout=TIMEOUT_MS)
    expect(surgeon.locator("#now-title")).to_contain_text("1. ", timeout=TIMEOUT_MS)
    form = coord.locator("#outcome-form")
    expect(form.get_by_role("checkbox", name="surgery", exact=True)).not_to_be_checked()
    form.get_by_role("checkbox", name="surgery", exact=True).check()
    form.get_by_role("checkbox", name="endocrine therapy", exact=True).check()
    form.get_by_label("Notes").fill("Wide local excision, then an aromatase inhibitor.")
    form.get_by_role("button", name="Record outcome").click()
    expect(coord.locator("#now-outcome")).to_contain_text("surgery, endocrine therapy", timeout=TIMEOUT_MS)
    chair = session.person("north.path")
    chair.goto(meeting_url + "/room")
    chair.get_by_role("button", name="Sign off this outcome").click()
    expect(surgeon.locator("#room-agenda li").first.locator(".decision")).to_have_text(
        "surgery, endocrine therapy · signed off", timeout=TIMEOUT_MS
    )

    # The summary names the patients and prints.
    coord.context.add_init_script("window.print = () => { window.__printed = true; };")
    coord.goto(meeting_url + "/summary")
    for _, _, patient in CASES:
        expect(coord.locator("td.patient", has_text=patient)).to_have_count(1)
    expect(coord.locator("td.patient").first).to_contain_text("NHS 999 000")
    coord.get_by_role("button", name="Print").click()
    coord.wait_for_function("window.__printed === true", timeout=TIMEOUT_MS)
    coord.screenshot(path=str(session.data_dir / "summary.png"))
