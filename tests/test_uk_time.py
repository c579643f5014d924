"""Times on screen are UK local time, summer time included (stored times are UTC)."""

from __future__ import annotations

from collab.web.render import TEMPLATES, uk_time
from tests.conftest import Server, collab, sign_in_with_form


def test_stored_utc_times_read_as_uk_local_time() -> None:
    assert uk_time("2026-07-01T12:00:00+00:00") == "2026-07-01 13:00"  # BST
    assert uk_time("2026-12-01T12:00:00+00:00") == "2026-12-01 12:00"  # GMT
    assert uk_time("2026-03-29T00:59:59") == "2026-03-29 00:59"  # naive: read as UTC
    assert uk_time(None) == "" and uk_time("") == ""


def test_case_notes_are_dated_in_uk_time() -> None:
    page = TEMPLATES.get_template("_case_work.html").render(
        case={
            "notes": [{"author": "Dr North", "created": "2026-07-01T12:00:00+00:00", "body": "x"}],
            "slides": [],
        }
    )
    assert "Dr North, 2026-07-01 13:00" in page and "Times are UK local time." in page


def test_meeting_times_on_the_worklist_and_in_the_room_are_uk_time(server: Server) -> None:
    """A meeting at 13:00 UK time in June is stored as 12:00 UTC, and shown as 13:00."""
    made = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2030-06-04T13:00",
        "--chair", "north.path", "--coordinator", "north.path", "--case", "S26-1", data_dir=server.data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    person = sign_in_with_form(server, "north.path")
    assert "2030-06-04 13:00 (UK local time)" in person.get("/").text
    assert "2030-06-04 13:00 (UK local time)" in person.get(f"/meetings/{made.stdout.strip()}/room").text
    person.client.close()
