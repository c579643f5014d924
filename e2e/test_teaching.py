"""A teaching session in real Chromium: an educator and two students who join with a code.

Every response and websocket frame the students' browsers receive is recorded, and none may
carry the case's accession, its patient's identifiers, or the real case or slide ids.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, Response, WebSocket, expect
from pycrdt import Doc, Map, create_update_message

from e2e.conftest import E2ESession
from e2e.test_session import TIMEOUT_MS, at_viewer, draw_rectangle, same_view, settled_view
from tests.conftest import connect_db

PATIENT = ("Margaret Ellis", "943 476 5919", "1958-03-14")
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


class Recorder:
    """Everything one browser context received: response headers and text bodies (read as they
    arrive: a page navigated away from no longer has them), and websocket frames."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("response", lambda response: self._response(response))
        page.on("websocket", lambda socket: self._socket(socket))

    def _response(self, response: Response) -> None:
        self.texts.append(f"{response.url} {response.all_headers()}")
        kind = response.headers.get("content-type", "")
        if response.status not in (301, 302, 303, 304) and kind.startswith(TEXT_TYPES):
            self.texts.append(response.text())

    def _socket(self, socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: self._frame(payload))

    def _frame(self, payload: str | bytes) -> None:
        self.texts.append(payload.decode("latin-1") if isinstance(payload, bytes) else payload)


def _student(session: E2ESession, code: str, name: str) -> tuple[Page, Recorder]:
    """A guest joins by typing the code at /join, with a display name."""
    page = session.new_context(name).new_page()
    session.pages.setdefault(name, []).append(page)
    recorder = Recorder()
    recorder.attach(page)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto("/join")
    page.locator("input[name=code]").fill(code.lower())
    page.locator("input[name=name]").fill(name)
    with page.expect_navigation():
        page.locator("form.join button[type=submit]").click()
    _ready(page)
    return page, recorder


def _ready(page: Page) -> None:
    expect(page.locator("#viewer")).to_have_attribute("data-first-tile", "drawn", timeout=TIMEOUT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)


def _crafted_update(slide: str, author: str) -> list[int]:
    """A y-websocket update message adding an annotation, made outside any viewer."""
    doc: Doc[Any] = Doc()
    annotations = doc.get("annotations", type=Map)
    annotations["crafted"] = Map({"slide": slide, "kind": "point", "points": [[1.0, 1.0]], "author": author})
    return list(create_update_message(doc.get_update()))


SEND_RAW = """async ([url, bytes]) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(new Uint8Array(bytes));
    socket.onclose = (event) => resolve(event.code);
})"""


def test_teaching_session_follow_quiz_pen_and_no_identifiers(session: E2ESession) -> None:
    with connect_db(session.data_dir) as db:
        db.execute(
            "UPDATE cases SET patient_name = ?, nhs_number = ?, date_of_birth = ? WHERE id = ?",
            (*PATIENT, session.case_id),
        )
        paths = [r[0] for r in db.execute("SELECT path FROM slides WHERE case_id = ?", (session.case_id,))]

    # The educator builds the session from the worklist's case.
    educator = session.person("north.path")
    educator.set_viewport_size({"width": 1400, "height": 900})
    educator.goto("/teaching")
    educator.locator("input[name=title]").fill("Breast pathology, year 3")
    educator.locator(f"input[name=case][value='{session.case_id}']").check()
    with educator.expect_navigation():
        educator.locator(".teaching-form button[type=submit]").click()
    _ready(educator)
    code = educator.locator("#join-code").inner_text()
    session_id = educator.url.rsplit("/", 1)[1]

    ann, ann_seen = _student(session, code, "Ann")
    bob, bob_seen = _student(session, code, "Bob")
    expect(educator.locator("#students li")).to_have_count(2, timeout=TIMEOUT_MS)

    # Follow lock: the educator zooms, then changes slide; both students follow.
    educator.locator("#viewer").hover()
    educator.mouse.wheel(0, -600)
    view = settled_view(educator)
    for student in (ann, bob):
        same_view(student, view)
    educator.locator(".slide-strip button").nth(1).click()
    expect(educator.locator("#viewer")).not_to_have_attribute("data-slide-id", view["slide"])
    educator.locator("#viewer").hover()
    educator.mouse.wheel(0, -300)
    view = settled_view(educator)
    for student in (ann, bob):
        same_view(student, view)
    # A student's own drag does not take them elsewhere.
    ann.mouse.move(*at_viewer(ann, 400, 400))
    ann.mouse.down()
    ann.mouse.move(*at_viewer(ann, 100, 100), steps=5)
    ann.mouse.up()
    same_view(ann, view)

    # Quiz: asked, answered privately, revealed to all at once.
    educator.locator("#quiz-form input[name=question]").fill("Click the mitotic figure")
    educator.locator("#quiz-form button[type=submit]").click()
    for student in (ann, bob):
        expect(student.locator("#quiz-banner .question")).to_have_text(
            "Click the mitotic figure", timeout=TIMEOUT_MS
        )
    ann.mouse.click(*at_viewer(ann, 500, 400))
    bob.mouse.click(*at_viewer(bob, 700, 300))
    expect(ann.locator(".quiz-scatter .my-answer")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(bob.locator(".quiz-scatter .my-answer")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(ann.locator(".quiz-scatter .answer")).to_have_count(0)
    expect(educator.locator("#quiz-count")).to_have_text("2 answered", timeout=TIMEOUT_MS)
    educator.locator("#reveal").click()
    for page in (educator, ann, bob):
        expect(page.locator(".quiz-scatter .answer")).to_have_count(2, timeout=TIMEOUT_MS)

    # The pen: Ann draws a rectangle that everyone sees; Bob has no tools.
    educator.locator("#students li", has_text="Ann").locator(".give-pen").click()
    expect(ann.locator("#pen-status")).to_have_text("You have the pen: draw on the slide", timeout=TIMEOUT_MS)
    expect(bob.locator("#pen-status")).to_have_text("Ann has the pen", timeout=TIMEOUT_MS)
    expect(bob.locator("[data-tool=rect]")).to_have_count(0)
    draw_rectangle(ann, (300, 300), (500, 450))
    for page in (educator, ann, bob):
        expect(page.locator("#annotation-list li[data-annotation-id]")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(bob.locator("#annotation-list li .meta")).to_contain_text("Ann")

    # A hand-made websocket message from Bob's browser is refused, and changes nothing.
    slide = bob.evaluate("window.collab.slideView.slideId")
    author = str(bob.evaluate("JSON.parse(document.getElementById('teach-data').textContent).user.id"))
    url = session.url.replace("http://", "ws://") + f"/ws/teaching/{session_id}"
    assert bob.evaluate(SEND_RAW, [url, _crafted_update(slide, author)]) == 4403
    assert educator.evaluate("window.collab.annotations.map.has('crafted')") is False
    expect(educator.locator("#annotation-list li[data-annotation-id]")).to_have_count(1)

    forbidden = ["S26-1", *PATIENT, session.case_id, *session.slide_ids, *paths]
    for recorder in (ann_seen, bob_seen):
        texts = recorder.texts
        assert any("Click the mitotic figure" in t for t in texts)  # the recording works
        for text in texts:
            for secret in forbidden:
                assert secret not in text, f"{secret!r} reached a student"
