"""The things collab keeps: plain records, no storage or web code."""

from __future__ import annotations

from dataclasses import dataclass

PRIORITIES = ("urgent", "2ww", "routine")
STATUSES = ("new", "in review", "reported")


@dataclass(frozen=True)
class Organisation:
    """A hospital trust, optionally part of a pathology network."""

    id: int
    name: str
    network: str | None


@dataclass(frozen=True)
class Case:
    """A patient case owned by one organisation."""

    id: str
    accession: str
    org_id: int
    priority: str
    status: str
    created: str


@dataclass(frozen=True)
class SlideRecord:
    """A registered slide file; ``path`` never leaves the server."""

    id: str
    case_id: str
    path: str
    stain: str | None
    width: int
    height: int
    vendor: str | None
    added: str
