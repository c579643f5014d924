"""A case page whose access ends while it is open: it says so and takes the patient off the screen;
a share made read-only brings the page back read-only."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from tests.conftest import add_user, collab, connect_db, sign_in_with_form

TIMEOUT_MS = 15_000
NHS_NUMBER = "943 476 5919"


def _shared_with_south(session: E2ESession, *extra: str) -> None:
    """South Trust's pathologist gets S26-1 (which now names a patient) through a share."""
    assert collab("orgs", "add", "South Trust", data_dir=session.data_dir).returncode == 0
    add_user(session.data_dir, "south.path", "pathologist", "South Trust", "--name", "Dr South")
    with connect_db(session.data_dir) as db:
        db.execute(
            "UPDATE cases SET patient_name = 'Margaret Ellis', nhs_number = ?, date_of_birth = '1958-03-14'"
            " WHERE id = ?",
            (NHS_NUMBER, session.case_id),
        )
    shared = collab("cases", "share", "S26-1", "--user", "south.path", *extra, data_dir=session.data_dir)
    assert shared.returncode == 0, shared.stderr


def _open(page: Page, session: E2ESession) -> None:
    page.goto(f"/cases/{session.case_id}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)


def test_ended_access_says_so_and_removes_the_patient(session: E2ESession) -> None:
    _shared_with_south(session)
    page = session.person("south.path")
    _open(page, session)
    expect(page.locator(".case-details")).to_contain_text(NHS_NUMBER)

    north = sign_in_with_form(session.server, "north.path")
    [share] = north.get(f"/api/cases/{session.case_id}").json()["shares"]
    assert north.post(f"/cases/{session.case_id}/shares/{share['id']}/revoke").status_code == 303
    north.client.close()

    expect(page.locator("h1")).to_have_text("Your access to this case has ended", timeout=TIMEOUT_MS)
    expect(page.locator("[role=alert]")).to_contain_text("Back to the worklist")
    for gone in ("Margaret Ellis", NHS_NUMBER, "1958-03-14", "S26-1"):
        assert gone not in page.content(), gone
    assert page.title() == "Your access to this case has ended"
    # It does not try again: the provider was stopped for good.
    assert page.evaluate("window.collab.provider.shouldConnect") is False


def test_a_share_made_read_only_brings_the_page_back_read_only(session: E2ESession) -> None:
    _shared_with_south(session)
    page = session.person("south.path")
    _open(page, session)
    expect(page.locator(".case-head")).not_to_contain_text("read-only")

    # The command line, another process, replaces the contributing share with a read-only one.
    down = collab("cases", "share", "S26-1", "--user", "south.path", "--read-only", data_dir=session.data_dir)
    assert down.returncode == 0, down.stderr

    expect(page.locator(".case-head")).to_contain_text("read-only", timeout=TIMEOUT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    assert page.evaluate("window.collab.annotations.rights.contribute") is False
