"""Settings, built once from the command line and passed in; nothing is read at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collab.domain import DECISIONS
from collab.integrations import Integrations

DEFAULT_DATA_DIR = "collab-data"
# A 200-person meeting holds 200 websockets, and each browser opens up to 6 connections for
# tiles: 1,400 at its peak. 4,096 leaves room for a second meeting or a class at the same time.
DEFAULT_MAX_CONNECTIONS = 4096


# A site's own list of MDT decisions: a short line each, a list one can still read on screen.
MAX_DECISIONS = 40
MAX_DECISION_CHARS = 60


def read_decisions(text: str) -> tuple[str, ...]:
    """The decisions of a ``--decisions`` file: one per line; blank lines and lines starting
    with ``#`` are skipped. ValueError with a one-line reason for a list that cannot be used."""
    found = [line.strip() for line in text.splitlines()]
    decisions = [line for line in found if line and not line.startswith("#")]
    if not decisions:
        raise ValueError("the decisions file lists no decision (one per line)")
    if len(decisions) > MAX_DECISIONS:
        raise ValueError(f"the decisions file lists {len(decisions)} decisions; at most {MAX_DECISIONS}")
    long = [d for d in decisions if len(d) > MAX_DECISION_CHARS]
    if long:
        raise ValueError(f"a decision is at most {MAX_DECISION_CHARS} characters: {long[0][:80]!r}")
    doubled = sorted({d for d in decisions if decisions.count(d) > 1})
    if doubled:
        raise ValueError(f"the decisions file lists {doubled[0]!r} twice")
    return tuple(decisions)


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
    # Worker processes drawing tiles (collab.slides.workers); 0: the server's own threads.
    tile_processes: int = 0
    # Redis shared with the other server processes serving the same rooms (collab.sync.bus).
    redis_url: str | None = None
    tile_cache_mb: int = 128
    pixel_cache_mb: int = 256
    # Open connections (websockets included) past which new ones are refused with 503.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Addresses or networks of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto
    # are believed; none by default, so no client can claim another address or https.
    trusted_proxies: tuple[str, ...] = ()
    # Slides uploaded from a browser: the largest accepted file (20 GiB holds a 40x SVS).
    max_upload_bytes: int = 20 << 30
    # A scanner's drop folder (default: the data dir's ``import``), and the organisation whose
    # slides land there (None: the only organisation, when there is exactly one).
    import_dir: Path | None = None
    import_org: str | None = None
    # The decisions an MDT outcome chooses from (``collab serve --decisions FILE``).
    decisions: tuple[str, ...] = DECISIONS
    # The PACS and sign-on providers of ``--config FILE`` (collab.integrations); none by default.
    integrations: Integrations = field(default_factory=Integrations)
    # The bearer token a Prometheus scraper sends to /metrics ($COLLAB_METRICS_TOKEN); None: only
    # administrators may read it. Never printed, even in the settings' repr.
    metrics_token: str | None = field(default=None, repr=False)
    # ``postgresql://user[:password]@host[:port]/db`` or ``sqlite:///FILE``; None: the SQLite file
    # in the data dir (collab.store.dburl). Left out of the repr: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    # Worker processes the server starts to run queued analysis jobs (collab.analysis.workers);
    # 0: none here (run ``collab analyses worker`` elsewhere, or the jobs wait). ``collab serve``
    # starts one unless told otherwise; an app built in a test starts none.
    analysis_workers: int = 0
    # The analyses queued for every newly registered slide (the cheap QC by default: a slide to
    # rescan is best found before anyone opens it).
    analyse_on_registration: tuple[str, ...] = ("slide-qc",)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "collab.sqlite3"

    @property
    def import_path(self) -> Path:
        return self.import_dir or self.data_dir / "import"
