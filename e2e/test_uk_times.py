"""Times on screen are 24-hour UK local time whatever the browser's own language and zone: a
consultant's laptop set to US English in New York reads the discussion as colleagues in the
UK do."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, open_case

UK = ZoneInfo("Europe/London")


def test_discussion_times_are_24_hour_uk_time_in_any_browser_locale(session: E2ESession) -> None:
    page = session.person("north.path", locale="en-US", timezone_id="America/New_York")
    open_case(page, session)
    page.locator("#message-form textarea").fill("Margins clear.")
    page.locator("#message-form button[type=submit]").click()
    when = page.locator("#messages li.message time").first
    expect(when).not_to_have_text("", timeout=TIMEOUT_MS)
    stored = datetime.fromisoformat(when.get_attribute("datetime").replace("Z", "+00:00"))  # type: ignore[union-attr]
    uk = stored.astimezone(UK)
    expected = f"{uk.day} {uk.strftime('%b')} {uk.year}, {uk.strftime('%H:%M')}"
    assert when.inner_text() == expected
    assert "AM" not in when.inner_text() and "PM" not in when.inner_text()
