"""End-to-end fixtures: a real server, real slides and real people in headless Chromium.

Each test gets a fresh data dir and its own ``collab serve`` subprocess; each person is
one browser context (own cookies), signed in through the login form. Chromium is the
system's (``/usr/bin/chromium``): Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

from collab.slides.demo import generate_demo_slide
from tests.conftest import (  # noqa: F401 (pg_cluster, database_url: autouse fixtures here too)
    PASSWORD,
    Server,
    add_slides,
    add_user,
    collab,
    connect_db,
    database_url,
    pg_cluster,
    seed_case,
    start_server,
    stop_server,
    write_pyramid_tiff,
)

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")

# Two generated slides for case S26-1, in the order they are registered.
SLIDES = (("north-a.tiff", 4000, 3000, 1), ("north-b.tiff", 3000, 2000, 2))

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keeps each phase's report on the item, so fixtures can tell at teardown that a test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(node: pytest.Item) -> bool:
    reports = node.stash.get(_REPORTS, {})
    return any(report.failed for when, report in reports.items() if when in ("setup", "call"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options, on the system Chromium (also for its own ``page``)."""
    args = dict(browser_type_launch_args)
    if SYSTEM_CHROMIUM.exists():
        args["executable_path"] = str(SYSTEM_CHROMIUM)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root.
        args["args"] = [*args.get("args", []), "--no-sandbox"]
    return args


@pytest.fixture(scope="session")
def chromium_browser(playwright: Playwright, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """One headless Chromium for the whole run (``--headed`` shows it)."""
    browser = playwright.chromium.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def slide_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The generated slides, written once per run; servers only read them."""
    folder = tmp_path_factory.mktemp("e2e-slides")
    # The first is H&E-like with a pixel size (scale bar, lengths in µm); the second has none.
    (name, width, height, seed), second = SLIDES
    generate_demo_slide(folder / name, l0_width=width, l0_height=height, mpp=0.25, seed=seed)
    return [folder / name, write_pyramid_tiff(folder / second[0], second[1], second[2], seed=second[3])]


class E2ESession:
    """A running server with case S26-1 and its two slides, and the people looking at it."""

    def __init__(self, browser: Browser, data_dir: Path, slide_files: list[Path]) -> None:
        self.browser = browser
        self.data_dir = data_dir
        self.contexts: list[BrowserContext] = []
        self.pages: dict[str, list[Page]] = {}
        self.console: list[str] = []
        self.csp_violations: list[str] = []
        seed_case(data_dir)
        add_user(data_dir, "north.trainee", "trainee", "North Trust", "--name", "North Trainee")
        add_user(data_dir, "north.onc", "clinician", "North Trust", "--name", "Dr Oncology")
        self.slide_ids = add_slides(data_dir, *slide_files)
        with connect_db(data_dir) as db:
            (self.case_id,) = db.execute("SELECT id FROM cases WHERE accession = 'S26-1'").fetchone()
        self.server: Server = start_server(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def new_context(self, who: str, **options: Any) -> BrowserContext:
        """A fresh browser (own cookies) whose console is kept, and whose every breach of our
        Content Security Policy is recorded: a test with one fails (see the fixture).
        ``options`` go to Playwright (a locale, a time zone)."""
        context = self.browser.new_context(base_url=self.server.url, **options)
        self.contexts.append(context)
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));"
        )
        context.on("console", lambda message: self._log(who, message))
        context.on("weberror", lambda error: self.console.append(f"{who} pageerror: {error.error}"))
        return context

    def person(self, username: str, password: str = PASSWORD, **options: Any) -> Page:
        """A new browser context for ``username``, signed in through the login form."""
        page = self.new_context(username, **options).new_page()
        self.pages.setdefault(username, []).append(page)
        page.goto("/login")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill(password)
        with page.expect_navigation():
            page.locator("form.login button[type=submit]").click()
        if urlsplit(page.url).path == "/login":
            alert = page.locator("[role=alert]")
            message = alert.inner_text() if alert.count() else "no message"
            raise AssertionError(f"{username} could not sign in: {message}")
        return page

    def restart(self, args: tuple[str, ...] = ()) -> None:
        """Kill the server (SIGKILL, no clean shutdown) and start it again on the same port,
        with more ``collab serve`` options if given."""
        port = urlsplit(self.server.url).port
        self.server.process.kill()
        self.server.process.wait()
        stop_server(self.server)
        self.server = start_server(self.data_dir, port=port, args=args)

    def _log(self, username: str, message: ConsoleMessage) -> None:
        line = f"{username} {message.type}: {message.text}"
        self.console.append(line)
        if "CSP violation" in message.text or "Content Security Policy" in message.text:
            self.csp_violations.append(line)

    def save_artifacts(self, folder: Path) -> None:
        """Screenshots of every open page, the browsers' console and the server's log."""
        folder.mkdir(parents=True, exist_ok=True)
        for username, pages in self.pages.items():
            for number, page in enumerate(pages):
                if page.is_closed():
                    continue
                try:
                    page.screenshot(path=folder / f"{username}-{number}.png", full_page=True)
                except Exception as exc:  # a crashed page must not hide the test's own failure
                    self.console.append(f"{username} screenshot failed: {exc}")
        (folder / "console.txt").write_text("\n".join(self.console) + "\n")
        log = self.data_dir / "server.log"
        if log.exists():
            (folder / "server.log").write_bytes(log.read_bytes())

    def breast_mdt(self, *, attendees: tuple[str, ...] = ("north.onc",)) -> str:
        """A meeting of North Trust with case S26-1 on its agenda, chaired by north.path and
        coordinated by north.coord (made here); its id."""
        add_user(self.data_dir, "north.coord", "clinician", "North Trust", "--name", "Ms Coordinator")
        made = collab(
            "meetings", "add", "Breast MDT", "--org", "North Trust", "--starts", "2030-06-04T13:00",
            "--chair", "north.path", "--coordinator", "north.coord", "--case", "S26-1",
            *(arg for name in attendees for arg in ("--attendee", name)), data_dir=self.data_dir,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def start_teaching(self, educator: Page) -> str:
        """The educator makes a teaching session of case S26-1 from /teaching; its id."""
        educator.goto("/teaching")
        educator.locator("input[name=title]").fill("Breast pathology, year 3")
        educator.locator(f"input[name=case][value='{self.case_id}']").check()
        with educator.expect_navigation():
            educator.locator(".teaching-form button[type=submit]").click()
        return educator.url.rsplit("/", 1)[1]

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        stop_server(self.server)


@pytest.fixture
def session(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    chromium_browser: Browser,
    slide_files: list[Path],
) -> Iterator[E2ESession]:
    """Fresh data dir, a real server, North Trust's people and case S26-1 with two slides."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = E2ESession(chromium_browser, data_dir, slide_files)
    try:
        yield running
    finally:
        if _failed(request.node):
            output = Path(request.config.getoption("--output", default="test-results")).absolute()
            running.save_artifacts(output / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid))
        running.close()
    # Every page of every e2e test runs under the real Content Security Policy.
    assert not running.csp_violations, "\n".join(running.csp_violations)
