"""Settings, built once from the command line and passed in; nothing is read at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "collab-data"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$COLLAB_DATA_DIR``, else ``./collab-data``."""
    return Path(environ.get("COLLAB_DATA_DIR") or DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, in one frozen value."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    # Threads for slide reads and image encoding; decoders release the GIL.
    slide_threads: int = field(default_factory=lambda: max(2, os.cpu_count() or 1))
    max_open_slides: int = 16
    tile_cache_mb: int = 128
    pixel_cache_mb: int = 256

    @property
    def database_path(self) -> Path:
        return self.data_dir / "collab.sqlite3"
