"""Operations metrics: histograms and counters kept by their owners, read out as Prometheus text.

Counting costs a plain integer increment where the thing happens: on the event loop no lock is
needed (one callback runs at a time), and the slide threads count their cache hits under the
cache's own lock, which they hold anyway. Gauges (open rooms, peers, queue depth, cache bytes)
are read only when scraped. Label values come from the fixed small sets below, never from a
request: no case id, slide id, accession number or username can reach the text.

The format is Prometheus' text exposition format 0.0.4 (docs/operations.md lists the metrics).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # only for hints: this module imports nothing of ours at run time
    from collab.slides.library import SlideLibrary
    from collab.sync.bus import Bus
    from collab.sync.rooms import Rooms

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a SQLite transaction or a cached pass-through tile takes a millisecond or two, a tile
# decoded from a JPEG 2000 slide or read from a PACS tens to hundreds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ImageKind = Literal["tile", "thumbnail", "associated"]
IMAGE_KINDS: tuple[ImageKind, ...] = ("tile", "thumbnail", "associated")
# hit: from the encoded-tile cache; rendered: drawn for this request; shared: another request was
# drawing the same image and this one waited for it; not_modified: 304 to If-None-Match;
# error: the slide could not be read there (503).
ImageOutcome = Literal["hit", "rendered", "shared", "not_modified", "error"]
IMAGE_OUTCOMES: tuple[ImageOutcome, ...] = ("hit", "rendered", "shared", "not_modified", "error")

Labels = tuple[tuple[str, str], ...]


class Histogram:
    """Counts of observations at or under each bound, their sum and number (one series)."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (``le`` is inclusive).
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


class Family:
    """One metric: its name, type, help line and samples."""

    def __init__(self, name: str, kind: Literal["counter", "gauge", "histogram"], help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.samples: list[tuple[str, Labels, float]] = []

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((self.name, tuple(labels.items()), value))
        return self

    def add_histogram(self, histogram: Histogram, **labels: str) -> Family:
        cumulative = 0
        for bound, count in zip((*histogram.buckets, math.inf), histogram.counts, strict=True):
            cumulative += count
            bucket_labels = (*labels.items(), ("le", _number(bound)))
            self.samples.append((f"{self.name}_bucket", bucket_labels, cumulative))
        self.samples.append((f"{self.name}_sum", tuple(labels.items()), histogram.sum))
        self.samples.append((f"{self.name}_count", tuple(labels.items()), histogram.count))
        return self


def render(families: Iterable[Family]) -> str:
    """The families in the text exposition format, each with its HELP and TYPE lines."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for name, labels, value in family.samples:
            text = ",".join(f'{key}="{_escape(val, quote=True)}"' for key, val in labels)
            lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape(text: str, *, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, int) or value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class ServerMetrics:
    """What the web layer counts (images served, render times), and the scrape of everything."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.images: dict[tuple[ImageKind, ImageOutcome], int] = {
            (kind, outcome): 0 for kind in IMAGE_KINDS for outcome in IMAGE_OUTCOMES
        }
        self.render_seconds: dict[ImageKind, Histogram] = {kind: Histogram() for kind in IMAGE_KINDS}

    def image_served(self, kind: ImageKind, outcome: ImageOutcome) -> None:
        self.images[(kind, outcome)] += 1

    def families(
        self, rooms: Mapping[str, Rooms], library: SlideLibrary, bus: Bus | None = None
    ) -> list[Family]:
        """Every metric as it stands; ``rooms`` by kind of room (``case``, ``teaching``); the
        link to the other server processes, if there is one."""
        uptime = Family("collab_uptime_seconds", "gauge", "Seconds since the server started.")
        families = [uptime.add(round(time.monotonic() - self.started, 3))]
        families += _room_families(rooms)
        served = Family(
            "collab_images_served_total",
            "counter",
            "Slide images answered (tiles, thumbnails, label and macro images), by outcome.",
        )
        for (kind, outcome), count in self.images.items():
            served.add(count, image=kind, outcome=outcome)
        render_time = Family(
            "collab_image_render_seconds",
            "histogram",
            "Time to draw an image that was not cached, waiting for a slide thread included.",
        )
        for kind, histogram in self.render_seconds.items():
            render_time.add_histogram(histogram, image=kind)
        families += [served, render_time, *_cache_families(library)]
        if bus is not None:
            families += _bus_families(bus)
        return families


def _bus_families(bus: Bus) -> list[Family]:
    up = Family("collab_redis_up", "gauge", "1 while the link to the other server processes (Redis) is up.")
    messages = Family(
        "collab_redis_messages_total", "counter", "Room messages to and from the other server processes."
    )
    messages.add(bus.published, direction="published").add(bus.received, direction="received")
    dropped = Family(
        "collab_redis_dropped_total",
        "counter",
        "Messages not published because too many waited while Redis was away (the rooms resync).",
    )
    return [up.add(int(bus.up)), messages, dropped.add(bus.dropped)]


def _room_families(rooms: Mapping[str, Rooms]) -> list[Family]:
    open_rooms = Family("collab_rooms_open", "gauge", "Rooms loaded in memory (someone is connected).")
    peers = Family("collab_peers_connected", "gauge", "Websocket connections joined to a room.")
    received = Family(
        "collab_document_updates_received_total",
        "counter",
        "Document updates accepted into a room (from participants, and the server's own changes).",
    )
    written = Family(
        "collab_document_updates_written_total", "counter", "Document updates committed to the database."
    )
    queued = Family(
        "collab_write_queue_rows",
        "gauge",
        "Rows (document updates, Yjs client owners, presenter path samples) received and not yet"
        " committed: queued or in a transaction under way.",
    )
    failures = Family(
        "collab_write_failures_total",
        "counter",
        "Write transactions the database refused (locked, full, I/O); their rows are kept and retried.",
    )
    dropped = Family(
        "collab_write_dropped_rows_total",
        "counter",
        "Rows dropped because the database can never store them (logged as errors).",
    )
    batch = Family("collab_write_batch_seconds", "histogram", "Time to commit one batch of rows.")
    for kind, owner in rooms.items():
        open_rooms.add(len(owner), room=kind)
        peers.add(owner.peer_count, room=kind)
        received.add(owner.updates_received, room=kind)
        written.add(owner.updates_written, room=kind)
        queued.add(owner.queued_rows, room=kind)
        failures.add(owner.write_failures, room=kind)
        dropped.add(owner.rows_dropped, room=kind)
        batch.add_histogram(owner.write_seconds, room=kind)
    return [open_rooms, peers, received, written, queued, failures, dropped, batch]


def _cache_families(library: SlideLibrary) -> list[Family]:
    hits = Family("collab_cache_hits_total", "counter", "Lookups found in a slide cache.")
    misses = Family("collab_cache_misses_total", "counter", "Lookups not found in a slide cache.")
    size = Family("collab_cache_bytes", "gauge", "Bytes held by a slide cache.")
    limit = Family("collab_cache_limit_bytes", "gauge", "The most a slide cache holds before evicting.")
    entries = Family("collab_cache_entries", "gauge", "Entries held by a slide cache.")
    # tiles: encoded images as sent; pixels: decoded regions of slide files, shared by tiles.
    for name, cache in (("tiles", library.tiles), ("pixels", library.chunks)):
        hits.add(cache.hits, cache=name)
        misses.add(cache.misses, cache=name)
        size.add(cache.current_bytes, cache=name)
        limit.add(cache.max_bytes, cache=name)
        entries.add(len(cache), cache=name)
    slides = Family("collab_slides_open", "gauge", "Slide files held open.").add(library.open_count)
    return [hits, misses, size, limit, entries, slides]
