"""Operations: liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collab.metrics import CONTENT_TYPE, ServerMetrics, render
from collab.singleflight import SingleFlight

log = logging.getLogger("collab.ops")

# A load balancer waits a few seconds at most; a check slower than this counts as failed.
READY_TIMEOUT_S = 2.0
NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers (public)."""
    return JSONResponse({"status": "ok"})


def _checks(request: Request) -> dict[str, Callable[[], Awaitable[None]]]:
    """What the server needs in order to serve, by the name its readiness answer reports."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {"database": request.app.state.db.ping}
    if request.app.state.bus is not None:
        checks["redis"] = request.app.state.bus.ping
        # A process that cannot reach it serves rooms that miss other processes' updates.
    return checks


async def _outcome(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %s s", name, READY_TIMEOUT_S)
        return "timeout"
    except Exception as exc:
        log.warning("readiness: %s failed: %s", name, exc)  # the reason goes to the log only
        return "error"
    return "ok"


async def _run_checks(request: Request) -> dict[str, str]:
    checks = _checks(request)
    outcomes = await asyncio.gather(*(_outcome(name, check) for name, check in checks.items()))
    return dict(zip(checks, outcomes, strict=True))


async def readyz(request: Request) -> Response:
    """``GET /readyz``: 200 when every dependency answers, else 503 naming the one that did not.
    Public, for load balancers: it says only ok, error or timeout per check."""
    # Public, so a flood must not become database work: callers arriving while a check runs
    # share its answer, and at most one check is under way at a time.
    flight: SingleFlight[dict[str, str]] = request.app.state.readiness
    results = await flight.run("readyz", lambda: _run_checks(request))
    ready = all(outcome == "ok" for outcome in results.values())
    body = {"status": "ready" if ready else "not ready", "checks": results}
    return JSONResponse(body, status_code=200 if ready else 503, headers=NO_STORE)


def _digest(token: str) -> bytes:
    # Compared as digests: equal lengths, so the comparison tells nothing of the token's length.
    return hashlib.sha256(token.encode()).digest()


def _bearer_is_metrics_token(request: Request) -> bool:
    expected: str | None = request.app.state.settings.metrics_token
    auth = request.headers.get("authorization", "")
    if not expected or auth[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(_digest(auth[7:].strip()), _digest(expected))


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text, for ``COLLAB_METRICS_TOKEN`` as a bearer token or an admin.

    The auth middleware lets this path through unsigned (a scraper holds no account); this
    decides. No patient, case, slide or person is ever named in the text (collab.metrics)."""
    user = request.scope.get("user")
    if not (user is not None and user.role == "admin") and not _bearer_is_metrics_token(request):
        if user is not None:
            return PlainTextResponse("Metrics are for administrators.\n", status_code=403)
        refused = PlainTextResponse(
            "Send the metrics token as 'Authorization: Bearer <token>', or sign in as an administrator.\n",
            status_code=401,
        )
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    state = request.app.state
    server: ServerMetrics = state.metrics
    families = server.families(
        {"case": state.rooms, "teaching": state.teaching_rooms}, state.slides, state.bus
    )
    return Response(render(families), media_type=CONTENT_TYPE, headers=NO_STORE)


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]
