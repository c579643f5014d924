"""AI triage as an MDT meets it, in real Chromium: a slide is registered and slide QC runs on
it with a progress bar on the case page; the worklist says "rescan suggested" and why; the
pathologist presents the QC heatmap and a follower sees the same layer at the same opacity;
the pathologist dismisses the flag, and the audit log says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_analysis_overlays import heatmap_on
from e2e.test_session import TIMEOUT_MS, open_case
from tests.conftest import collab, collab_process, connect_db
from tests.qc_data import write_pyramid

QC_TIMEOUT_MS = 60_000


def flat_tissue_slide(path: Path) -> Path:
    """Glass with two stained tissue pieces, one of them without any texture: out of focus to
    QC, which asks for a rescan (a 4096 x 3072 slide at 0.5 µm/px)."""
    rng = np.random.default_rng(3)
    glass = np.array([240, 238, 244]) + rng.normal(0, 1.5, (3072, 4096, 1))
    canvas = Image.fromarray(np.clip(glass, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for cx, cy, r in ((1200, 1300, 700), (2900, 1700, 600)):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(214, 150, 190))
    cx, cy, r = 1200, 1300, 700  # nuclei on the first piece only: the second is a blur
    for _ in range(600):
        x, y, s = rng.normal(cx, r / 2.5), rng.normal(cy, r / 2.5), rng.uniform(4, 9)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=(90, 60, 140))
    return write_pyramid(path, np.asarray(canvas), 0.5)


def test_qc_flags_a_new_slide_and_an_mdt_looks_at_its_heatmap_together(session: E2ESession) -> None:
    tiff = flat_tissue_slide(session.data_dir / "flat.tiff")
    added = collab(
        "slides", "add", str(tiff), "--case", "S26-1", "--analyse-on-registration", "slide-qc",
        data_dir=session.data_dir,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    slide = added.stdout.split("\t")[0]

    # The pathologist opens the new slide: its QC waits for a worker, with its progress bar.
    path = session.person("north.path")
    open_case(path, session, slide)
    run = path.locator("#analysis-runs .jobs li").filter(has_text="Slide QC")
    expect(run.locator("progress")).to_be_visible(timeout=TIMEOUT_MS)
    expect(run).to_have_attribute("data-state", "queued")
    # A worker process takes the job (here started by hand: this server runs none).
    worker = collab_process("analyses", "worker", "--once", data_dir=session.data_dir)
    assert worker.returncode == 0, worker.stderr
    expect(run).to_have_attribute("data-state", "done", timeout=QC_TIMEOUT_MS)
    expect(run.locator("progress")).to_have_js_property("value", 1)

    # The worklist says why a rescan is suggested, and who says so.
    path.goto("/")
    flag = path.locator(".ai-flag").filter(has_text="rescan suggested")
    expect(flag.locator(".ai-flag-reason")).to_contain_text("out of focus in")
    expect(flag.locator(".ai-flag-source")).to_contain_text("slide-qc")

    # In the room: the pathologist presents the "out of focus" layer at 55%; a follower sees
    # the same layer at the same opacity.
    follower = session.person("north.trainee")
    presenter_id = open_case(path, session, slide)
    open_case(follower, session, slide)
    path.locator("#present").click()
    follower.locator(f"#presence li[data-client-id='{presenter_id}'] button.follow").click(timeout=TIMEOUT_MS)
    result = path.locator("#overlays article").filter(has_text="slide-qc")
    expect(result.locator(".provenance")).to_contain_text("run here by collab", timeout=TIMEOUT_MS)
    expect(result).to_contain_text("rescan suggested")
    result.get_by_label("Show the layer out of focus over the slide").check()
    result.get_by_label("Opacity of out of focus").fill("55")
    heatmap_on(path, "0.55")
    heatmap_on(follower, "0.55")
    shown = path.locator("#viewer img.ai-heatmap").get_attribute("src")
    expect(follower.locator("#viewer img.ai-heatmap")).to_have_attribute("src", shown or "")
    theirs = follower.locator("#overlays article").filter(has_text="slide-qc")
    expect(theirs.get_by_label("Show the layer out of focus over the slide")).to_be_checked()
    expect(theirs.get_by_label("Opacity of out of focus")).to_have_value("55")

    # After the meeting the pathologist dismisses the flag: gone from the worklist, audited.
    path.goto("/")
    with path.expect_navigation():
        flag.get_by_role("button", name="Dismiss").click()
    expect(path.locator(".ai-flag").filter(has_text="rescan suggested")).to_have_count(0)
    with connect_db(session.data_dir) as db:
        audited = db.execute(
            "SELECT event, detail FROM audit WHERE event LIKE 'analysis %' ORDER BY id"
        ).fetchall()
    assert [event for event, _ in audited] == [
        "analysis requested",
        "analysis finished",
        "analysis flag dismissed",
    ]
    assert audited[0][1].endswith("on registration")
    assert audited[2][1].startswith("rescan suggested (slide-qc 2, collab): out of focus in")
