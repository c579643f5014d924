"""Short, plain error answers; RFC 9457 problems for the API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

PROBLEM = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
}


def problem(status: int, detail: str, *, title: str | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem answer. ``error`` repeats ``detail`` for callers written before."""
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"), "status": status}
    body |= {"detail": detail, "error": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def error(status: int, message: str, request: Request | None = None, *, api: bool = False) -> Response:
    """An error as JSON for API callers, plain text for everyone else."""
    if api or (request is not None and request.url.path.startswith("/api/")):
        return problem(status, message)
    return PlainTextResponse(message + "\n", status_code=status)
