"""A site's own list of MDT decisions (``collab serve --decisions FILE``): the meeting offers it,
outcomes are recorded from it and from nothing else; a file that cannot be used stops the
server with a one-line reason. Real server, real SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import collab, connect_db, seed_case, sign_in_with_form, start_server, stop_server

SITE_LIST = (
    "# Breast MDT decisions, North Trust\nwide local excision\nmastectomy\n\nneoadjuvant chemotherapy\n"
)


def test_the_sites_list_is_offered_and_the_only_one_accepted(data_dir: Path, tmp_path: Path) -> None:
    seed_case(data_dir)
    decisions = tmp_path / "decisions.txt"
    decisions.write_text(SITE_LIST)
    made = collab(
        "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2030-06-04T13:00",
        "--chair", "north.path", "--coordinator", "north.path", "--case", "S26-1", data_dir=data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    meeting_id = made.stdout.strip()
    with connect_db(data_dir) as db:
        case_id = db.execute("SELECT id FROM cases").fetchone()[0]
    server = start_server(data_dir, args=("--decisions", str(decisions)))
    try:
        chair = sign_in_with_form(server, "north.path")
        room = chair.get(f"/api/meetings/{meeting_id}/room").json()
        assert room["decisions"] == ["wide local excision", "mastectomy", "neoadjuvant chemotherapy"]
        page = chair.get(f"/meetings/{meeting_id}").text
        assert 'value="mastectomy"' in page and 'value="surgery"' not in page
        outcome = f"/meetings/{meeting_id}/cases/{case_id}/outcome"
        refused = chair.client.post(outcome, data={"csrf": chair.csrf, "decision": ["surgery"]})
        assert refused.status_code == 400 and "mastectomy" in refused.text
        recorded = chair.client.post(
            outcome, data={"csrf": chair.csrf, "decision": ["mastectomy"], "notes": "x"}
        )
        assert recorded.status_code == 303
        room = chair.get(f"/api/meetings/{meeting_id}/room").json()
        assert room["state"]["agenda"][0]["outcome"]["decisions"] == ["mastectomy"]
        chair.client.close()
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# only a comment\n\n", "lists no decision"),
        ("surgery\nsurgery\n", "'surgery' twice"),
        ("x" * 61 + "\n", "at most 60 characters"),
        ("".join(f"decision {n}\n" for n in range(41)), "at most 40"),
    ],
)
def test_a_decisions_file_that_cannot_be_used_stops_the_server(
    data_dir: Path, tmp_path: Path, text: str, reason: str
) -> None:
    decisions = tmp_path / "decisions.txt"
    decisions.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "collab", "serve", "--data-dir", str(data_dir), "--port", "0",
         "--decisions", str(decisions)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert reason in done.stderr and "Traceback" not in done.stderr
