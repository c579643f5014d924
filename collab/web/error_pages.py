"""Error answers a person reads: a browser asking for a page gets the error as a page of the
app (what happened, and a way back) instead of a line of plain text.

Every handler answers errors with ``collab.web.errors.error`` (one plain line, or a problem
for the API); this middleware dresses the plain ones for browsers at the edge, so no handler
has to know who is asking. API callers, tiles and scripts (no ``text/html`` in ``Accept``)
get the plain line as before.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collab.web.render import TEMPLATES

# The heading for each status; the line the handler wrote says the rest.
HEADINGS = {
    400: "That request could not be understood",
    401: "Please sign in",
    403: "You cannot open this",
    404: "Not found",
    405: "That cannot be done here",
    409: "That clashes with something newer",
    410: "This has ended",
    413: "That is too large",
    415: "That kind of file or form is not accepted here",
    429: "Too many attempts",
}
# Starlette's own words for a route that does not exist, in ours.
PLAIN_WORDS = {
    "Not Found": "There is no page at this address.",
    "Method Not Allowed": "That cannot be done here.",
}
# The body of an error worth dressing is one short line; anything longer is passed on as it is.
MAX_PLAIN_BYTES = 4096


def wants_page(scope: Scope) -> bool:
    """A browser navigating: GET of a page, HTML accepted, not the API or the tile stream."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    if scope["path"].startswith(("/api/", "/static/")):
        return False
    # Navigations ask for text/html; fetches, tiles and scripts ask for */*, images or JSON.
    return "text/html" in Headers(scope=scope).get("accept", "")


class ErrorPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not wants_page(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def dress(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                plain = headers.get("content-type", "").startswith("text/plain")
                if 400 <= message["status"] < 500 and plain:
                    start = message  # held until the body is known
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body += message.get("body", b"")
            if len(body) > MAX_PLAIN_BYTES:  # not a one-line error: passed on as it came
                held, start = start, None
                await send(held)
                await send({**message, "body": body})
                return
            if message.get("more_body", False):
                return
            status = start["status"]
            text = body.decode("utf-8", "replace").strip()
            page = (
                TEMPLATES.get_template("error.html")
                .render(
                    user=scope.get("user"),
                    session_csrf=scope.get("csrf"),
                    status=status,
                    heading=HEADINGS.get(status, "Something went wrong"),
                    detail=PLAIN_WORDS.get(text, text),
                    view="",
                )
                .encode()
            )
            headers = MutableHeaders(scope=start)
            headers["content-type"] = "text/html; charset=utf-8"
            headers["content-length"] = str(len(page))
            await send(start)
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, dress)
