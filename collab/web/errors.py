"""Short, plain error answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


def error(status: int, message: str, request: Request | None = None, *, api: bool = False) -> Response:
    """An error as JSON for API callers, plain text for everyone else."""
    if api or (request is not None and request.url.path.startswith("/api/")):
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message + "\n", status_code=status)
