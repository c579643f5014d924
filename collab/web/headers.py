"""Security headers on every HTTP response (docs/security.md).

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: it only adds headers to the
response start, so tile responses and the meeting room's event stream pass through
untouched and unbuffered.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Scripts only from our own bundle: no inline script, no eval, no CDN. The page data
# blocks (<script type="application/json">) are not scripts and are never executed.
# Styles only from our stylesheets (scripts may still set element.style). Tiles are
# drawn from same-origin images; OpenSeadragon's navigator uses data: and blob: URLs.
# Frames: the meeting room embeds the case page (same origin); nobody else may frame us.
# OpenSeadragon 6.1.1 adds one <style> element of its own (no focus outline on touch
# screens); its hash lets exactly that through. The e2e suite fails on any CSP breach,
# so a new OpenSeadragon that changes it is caught there.
OPENSEADRAGON_STYLE = "sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE="
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' '{OPENSEADRAGON_STYLE}'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-src 'self'",
        "frame-ancestors 'self'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "SAMEORIGIN",
    # Case and session ids in our addresses never leave for another site.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# Pages and API answers carry patient details: never kept by a browser or a proxy.
NO_STORE_TYPES = (
    "text/html",
    "application/json",
    "application/problem+json",
    "text/csv",
    "application/geo+json",
)
# Two years, the usual preload value; sent only over https, where it means something.
HSTS = "max-age=63072000; includeSubDomains"


class SecurityHeaders:
    """Adds the headers above to every HTTP response, and ``no-store`` to patient data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                media_type = headers.get("content-type", "").split(";")[0].strip()
                if media_type in NO_STORE_TYPES and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
