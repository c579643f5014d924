"""Text that looks like HTML or script is shown as text, wherever people can write it.

Labels, discussion messages, display names, case details and a student's name, each holding
markup, are read by someone else in real Chromium: the words appear as typed, no element
is made from them, and nothing runs. (The Content Security Policy would also stop an inline
script; these checks hold without it: no markup is made in the first place.)
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, draw_rectangle, open_case
from tests.conftest import add_user, collab

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
SVG = '"><svg onload="window.__pwned=3">'


def _nothing_ran(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    # No element was made from the text (checked in every frame of the page).
    for frame in page.frames:
        assert frame.locator("img[src=x], svg[onload], script:not([src]):not([type])").count() == 0


def test_markup_in_what_people_write_is_shown_as_text(session: E2ESession) -> None:
    add_user(session.data_dir, "north.hostile", "pathologist", "North Trust", "--name", IMG)
    made = collab(
        "cases", "add", "S26-9", "--org", "North Trust", "--patient-name", SVG, "--clinical-details", SCRIPT,
        data_dir=session.data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    dialogs: list[str] = []

    writer = session.person("north.hostile")
    reader = session.person("north.path")
    for page in (writer, reader):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        open_case(page, session)

    # A label and a message holding markup, written by someone whose name is markup.
    draw_rectangle(writer, (150, 150), (320, 260))
    writer.locator("#annotation-editor [name=label]").fill(SCRIPT)
    writer.locator("#annotation-editor [name=label]").press("Enter")
    writer.locator("#message-form textarea").fill(SVG)
    writer.locator("#message-form button[type=submit]").click()

    expect(reader.locator("#annotation-list li .title")).to_have_text(SCRIPT, timeout=TIMEOUT_MS)
    expect(reader.locator("#annotation-list li .meta")).to_contain_text(IMG)
    message = reader.locator("#messages li.message")
    expect(message).to_contain_text(SVG, timeout=TIMEOUT_MS)
    expect(message).to_contain_text(IMG)
    expect(reader.locator("#presence")).to_contain_text(IMG)
    _nothing_ran(reader)

    # The case's details on the worklist and its page.
    reader.goto("/")
    expect(reader.locator("table.worklist")).to_contain_text(SVG)
    _nothing_ran(reader)
    reader.goto("/?view=anonymised")
    _nothing_ran(reader)

    # A student whose display name is markup, as the educator sees the class.
    reader.goto("/teaching")
    reader.locator("input[name=title]").fill(SCRIPT)
    reader.locator(f"input[name=case][value='{session.case_id}']").check()
    with reader.expect_navigation():
        reader.locator(".teaching-form button[type=submit]").click()
    code = reader.locator("#join-code").inner_text()
    student = session.new_context("student").new_page()
    student.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    student.goto(f"/join/{code}")
    student.locator("input[name=name]").fill(IMG)
    with student.expect_navigation():
        student.locator("form.join button[type=submit]").click()
    expect(student.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(reader.locator("#students")).to_contain_text(IMG, timeout=TIMEOUT_MS)
    for page in (reader, student, writer):
        _nothing_ran(page)
    assert dialogs == []
