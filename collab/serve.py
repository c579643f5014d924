"""Run the app under uvicorn."""

from __future__ import annotations

import uvicorn

from collab.app import create_app
from collab.config import Settings
from collab.wsfast import FanOutWebSocketProtocol


def serve(settings: Settings, *, access_log: bool = False) -> None:
    """Serve until interrupted."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_level="info",
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
