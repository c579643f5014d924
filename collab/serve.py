"""Run the app under uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from collab.app import create_app
from collab.config import Settings
from collab.httpguard import fit_to_file_limit, guarded_protocol
from collab.wsfast import FanOutWebSocketProtocol


def serve(settings: Settings, *, access_log: bool = False) -> None:
    """Serve until interrupted."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    max_connections = fit_to_file_limit(settings.max_connections)
    if max_connections < settings.max_connections:
        print(
            f"collab: the open-file limit allows {max_connections} connections, not"
            f" {settings.max_connections}; raise it (ulimit -n) to serve more",
            file=sys.stderr,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_level="info",
        # Each request must arrive within a deadline, and connections are capped below the
        # open-file limit: held or half-sent requests cannot starve the server.
        http=guarded_protocol(max_connections),
        # X-Forwarded-For and X-Forwarded-Proto are believed from the configured proxies only
        # (uvicorn would otherwise believe any local process).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        ws=FanOutWebSocketProtocol,
        # Compressing websocket frames cost about 30% CPU for little gain on small messages.
        ws_per_message_deflate=False,
        # A bigger frame closes that connection with 1009 (message too big).
        ws_max_size=1 << 20,
        # Dead links are found within ~20 s; a closed tab says goodbye at once.
        ws_ping_interval=10,
        ws_ping_timeout=10,
        timeout_graceful_shutdown=5,
    )
