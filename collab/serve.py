"""Run the app under uvicorn."""

from __future__ import annotations

import uvicorn

from collab.app import create_app
from collab.config import Settings


def serve(settings: Settings, *, access_log: bool = False) -> None:
    """Serve until interrupted."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_level="info",
        # Compressing websocket frames cost about 30% CPU for little gain on small messages.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
