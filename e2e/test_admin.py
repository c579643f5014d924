"""People administration in the browser, end to end: an administrator invites a pathologist, who
chooses a password through the link, changes it on their account page and opens a case; when the
administrator deactivates them, their open case page says their access has ended at once."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Dialog, Page, expect

from e2e.conftest import E2ESession
from tests.conftest import add_user, connect_db

TIMEOUT_MS = 15_000
FIRST_PASSWORD = "a first password, long enough"
SECOND_PASSWORD = "a second one, also long enough"


def _sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("form.login button[type=submit]").click()
    assert urlsplit(page.url).path != "/login", page.locator("[role=alert]").all_inner_texts()


def test_invite_change_password_then_deactivate(session: E2ESession) -> None:
    add_user(session.data_dir, "north.admin", "admin", "North Trust", "--name", "Alex Admin")
    admin = session.person("north.admin")
    admin.context.grant_permissions(["clipboard-read", "clipboard-write"])

    # The administrator adds a pathologist of North Trust with an invitation link.
    admin.goto("/admin/users")
    form = admin.locator("form.new-user")
    form.get_by_label("Full name").fill("Dr Invited")
    form.get_by_label("Username").fill("north.new")
    form.get_by_label("Role").select_option("pathologist")
    form.get_by_label("Trust").select_option(label="North Trust")
    form.get_by_label("Specialty").select_option("oncology")
    form.locator("input[name=how][value=invite]").check()
    with admin.expect_navigation():
        form.get_by_role("button", name="Add person").click()
    link = admin.get_by_role("textbox", name="Invitation link")
    expect(link).to_have_value(re.compile(r"^http://\S+/invite/\S{20,}$"))
    invite_url = link.input_value()
    row = admin.locator("tr[data-username='north.new']")
    expect(row).to_contain_text("invited")
    expect(row).to_contain_text("oncology")

    # "Copy link" puts the link on the clipboard and says so.
    admin.get_by_role("button", name="Copy link").click()
    expect(admin.locator("button[data-copy]")).to_have_text("Copied", timeout=TIMEOUT_MS)
    assert admin.evaluate("navigator.clipboard.readText()") == invite_url

    # The new person opens the link in their own browser, chooses a password and is signed in.
    new = session.new_context("north.new").new_page()
    session.pages.setdefault("north.new", []).append(new)
    new.goto(invite_url)
    expect(new.locator("h1")).to_contain_text("Dr Invited")
    new.get_by_label("New password", exact=True).fill(FIRST_PASSWORD)
    new.get_by_label("New password again").fill(FIRST_PASSWORD)
    with new.expect_navigation():
        new.get_by_role("button", name="Set password and sign in").click()
    expect(new.locator("nav.account .who")).to_contain_text("Dr Invited")
    # The link works once.
    second_look = session.new_context("stranger").new_page()
    second_look.goto(invite_url)
    expect(second_look.locator("h1")).to_have_text("Invitation not valid")
    second_look.close()

    # They change their password on their account page; the new one works, the old one not.
    new.goto("/account")
    new.get_by_label("Current password").fill(FIRST_PASSWORD)
    new.get_by_label("New password (at least").fill(SECOND_PASSWORD)
    new.get_by_label("New password again").fill(SECOND_PASSWORD)
    with new.expect_navigation():
        new.get_by_role("button", name="Change password").click()
    expect(new.locator(".notice")).to_contain_text("Your password has been changed")
    with new.expect_navigation():
        new.get_by_role("button", name="Sign out").click()
    assert urlsplit(new.url).path == "/login"
    new.locator("input[name=username]").fill("north.new")
    new.locator("input[name=password]").fill(FIRST_PASSWORD)
    with new.expect_navigation():
        new.locator("form.login button[type=submit]").click()
    assert urlsplit(new.url).path == "/login"
    _sign_in(new, "north.new", SECOND_PASSWORD)

    # They open a case of their trust, and the viewer connects.
    new.goto(f"/cases/{session.case_id}")
    expect(new.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)

    # The administrator deactivates them (after confirming): the open page says access has ended.
    admin.goto("/admin/users")
    row = admin.locator("tr[data-username='north.new']")
    question: list[str] = []

    def accept(dialog: Dialog) -> None:
        question.append(dialog.message)
        dialog.accept()

    admin.once("dialog", accept)
    with admin.expect_navigation():
        row.get_by_role("button", name="Deactivate").click()
    assert question and "Deactivate Dr Invited" in question[0], question
    expect(admin.locator("tr[data-username='north.new'] td.status")).to_have_text("deactivated")

    expect(new.locator("h1")).to_have_text("Your access to this case has ended", timeout=TIMEOUT_MS)
    new.reload()
    assert urlsplit(new.url).path == "/login", new.url

    # Each administrative act is in the audit log, naming the person it was done to.
    with connect_db(session.data_dir) as db:
        (new_id,) = db.execute("SELECT id FROM users WHERE username = 'north.new'").fetchone()
        (admin_id,) = db.execute("SELECT id FROM users WHERE username = 'north.admin'").fetchone()
        rows = db.execute("SELECT event, user_id, detail FROM audit ORDER BY id").fetchall()
    about_new = re.compile(rf"user {new_id}(:|$)")
    by_admin = {e for e, user_id, detail in rows if user_id == admin_id and about_new.match(detail or "")}
    assert {"user created", "invite issued", "user deactivated"} <= by_admin, rows
    by_new = {event for event, user_id, _ in rows if user_id == new_id}
    assert {"invite accepted", "password changed"} <= by_new, rows
