"""HTML pages from Jinja2 templates (autoescaped), with who is signed in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
UK = ZoneInfo("Europe/London")


def uk_time(stored: str | None) -> str:
    """A stored UTC time as UK local time to the minute ('' for none): what people in UK
    hospitals read, summer time included."""
    if not stored:
        return ""
    moment = datetime.fromisoformat(stored)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UK).strftime("%Y-%m-%d %H:%M")


TEMPLATES.filters["uk_time"] = uk_time


def render(request: Request, name: str, *, status: int = 200, **context: object) -> HTMLResponse:
    """A page; every template sees ``user`` and the session's ``csrf`` token."""
    context.setdefault("user", request.scope.get("user"))
    context.setdefault("session_csrf", request.scope.get("csrf"))
    # Links keep an anonymised view anonymised.
    context.setdefault("view", "&view=anonymised" if request.query_params.get("view") == "anonymised" else "")
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)
