"""Snapshots in real Chromium: the chair of an MDT draws a region, captions it and attaches it to
the meeting's outcome; it is downloadable (audited), posts to the discussion, and is printed in
the meeting's summary (a PDF from Chromium's print). A teaching snapshot carries no identifier:
not in its pixels' file, its metadata, its name or its headers."""

from __future__ import annotations

import io
import json

from PIL import Image
from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, at_viewer, click_tool, draw_rectangle
from tests.conftest import connect_db

SIZE = {"width": 1366, "height": 768}


def open_snapshot_panel(page: Page) -> None:
    click_tool(page, "#snapshot")
    expect(page.locator("#snapshot-panel")).to_be_visible()


def test_a_region_snapshot_attached_to_the_outcome_is_in_the_printed_summary(session: E2ESession) -> None:
    meeting_id = session.breast_mdt(attendees=())
    chair = session.person("north.path", viewport=SIZE)
    chair.goto(f"/cases/{session.case_id}?meeting={meeting_id}")
    expect(chair.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(chair.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    draw_rectangle(chair, (220, 180), (360, 300))
    expect(chair.locator("#annotation-list li[data-annotation-id]")).to_have_count(1, timeout=TIMEOUT_MS)

    open_snapshot_panel(chair)
    panel = chair.locator("#snapshot-panel")
    panel.locator("[name=caption]").fill("Invasive front, block A1")
    expect(panel.locator("[name=attach]")).to_be_checked()
    panel.locator(".snapshot-region-pick").click()
    chair.mouse.move(*at_viewer(chair, 180, 150))
    chair.mouse.down()
    chair.mouse.move(*at_viewer(chair, 420, 340), steps=6)
    chair.mouse.up()
    result = panel.locator(".snapshot-result img")
    expect(result).to_be_visible(timeout=TIMEOUT_MS)
    chair.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=result.element_handle())
    expect(panel.locator(".snapshot-status")).to_contain_text("attached to this meeting's outcome")
    width = int(result.evaluate("(img) => img.naturalWidth"))
    assert width > 200, width

    # Downloadable, and the download is audited.
    download = panel.locator(".snapshot-download").get_attribute("href")
    assert download
    got = chair.request.get(download)
    assert got.status == 200 and got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith("attachment;")
    with connect_db(session.data_dir) as db:
        acts = [r[0] for r in db.execute("SELECT event FROM audit WHERE event LIKE 'snapshot%'")]
    assert acts == ["snapshot made", "snapshot downloaded"], acts

    # Into the discussion, where the others see it.
    panel.locator(".snapshot-post").click()
    expect(chair.locator("#messages .message-snapshot img")).to_have_count(1, timeout=TIMEOUT_MS)

    # The printed summary shows it under the case's outcome.
    chair.goto(f"/meetings/{meeting_id}/summary")
    shown = chair.locator(".snapshots-row .snapshot img")
    expect(shown).to_have_count(1)
    chair.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    expect(chair.locator(".snapshots-row figcaption")).to_have_text("Invasive front, block A1")
    pdf = chair.pdf(format="A4", landscape=True)
    assert pdf.startswith(b"%PDF")
    images = pdf.count(b"/Subtype /Image")
    assert images >= 1, "the printed summary holds no image"
    assert f"/Width {width}".encode() in pdf, "the snapshot is not in the PDF at its own size"


def test_a_teaching_snapshot_carries_no_identifier(session: E2ESession) -> None:
    with connect_db(session.data_dir) as db:
        db.execute(
            "UPDATE cases SET patient_name = 'Margaret Ellis', nhs_number = '943 476 5919' WHERE id = ?",
            (session.case_id,),
        )
    educator = session.person("north.path", viewport=SIZE)
    session_id = session.start_teaching(educator)
    expect(educator.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    # The educator's Snapshot: this view; nothing to attach it to, no discussion to post it in.
    open_snapshot_panel(educator)
    panel = educator.locator("#snapshot-panel")
    expect(panel.locator(".attach")).to_be_hidden()
    panel.locator(".snapshot-view").click()
    result = panel.locator(".snapshot-result img")
    expect(result).to_be_visible(timeout=TIMEOUT_MS)
    expect(panel.locator(".snapshot-post")).to_be_hidden()
    download = panel.locator(".snapshot-download").get_attribute("href") or ""
    assert download.startswith(f"/teach/{session_id}/snapshots/"), download
    size = result.evaluate("(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    snapshot = {"download": download, "width": size[0], "height": size[1]}

    code = educator.locator("#join-code").inner_text()
    student = session.new_context("student").new_page()
    student.goto("/join")
    student.locator("input[name=code]").fill(code.lower())
    student.locator("input[name=name]").fill("Ann")
    with student.expect_navigation():
        student.locator("form.join button[type=submit]").click()
    got = student.request.get(snapshot["download"])
    assert got.status == 200, got.status
    png = got.body()
    with connect_db(session.data_dir) as db:
        secrets = [session.case_id, "S26-1", "Margaret Ellis", "943 476 5919", "9434765919"]
        secrets += session.slide_ids
        secrets += [r[0] for r in db.execute("SELECT path FROM slides")]
    seen = json.dumps(snapshot) + json.dumps(dict(got.headers)) + png.decode("latin-1")
    leaked = [s for s in secrets if s in seen]
    assert not leaked, f"the teaching snapshot carries {leaked}"
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (snapshot["width"], snapshot["height"])
    assert not set(image.info) - {"dpi", "gamma"}, f"metadata in the PNG: {image.info}"
    # A student cannot make one.
    refused = student.evaluate(
        """async (url) => (await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ slide: "x", x: 0, y: 0, width: 100, height: 100 }) })).status""",
        f"/teach/{session_id}/snapshots",
    )
    assert refused in (403, 422), refused
