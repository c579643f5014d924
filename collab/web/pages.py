"""HTML pages: the worklist and the case viewer."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from collab.store import Database
from collab.web.errors import error

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(name: str, **context: object) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context))


async def index(request: Request) -> Response:
    """``GET /``: the cases, most urgent first."""
    db: Database = request.app.state.db
    cases = [{"case": case, "slides": await db.slides_of_case(case.id)} for case in await db.cases()]
    return render("index.html", cases=cases)


async def case_page(request: Request) -> Response:
    """``GET /cases/{case_id}``: the case's slides in a viewer."""
    db: Database = request.app.state.db
    case = await db.case(request.path_params["case_id"])
    if case is None:
        return error(404, "No such case.")
    slides = await db.slides_of_case(case.id)
    wanted = request.query_params.get("slide")
    current = next((s for s in slides if s.id == wanted), slides[0] if slides else None)
    return render("case.html", case=case, slides=slides, current=current)


routes = [Route("/", index), Route("/cases/{case_id}", case_page)]
