"""Snapshots of slide regions: where each came from, who made it, and what it is attached to.
The PNG itself lies in the data directory (``snapshots/{id}.png``); who may see or make one is
decided by collab.web.snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database


@dataclass(frozen=True)
class Snapshot:
    id: str
    case_id: str | None  # None for a teaching session's snapshot
    slide_id: str
    teaching_id: str | None
    made_by: int
    made: str
    x: int  # the region, level-0 pixels of the slide
    y: int
    width: int
    height: int
    image_width: int
    image_height: int
    caption: str
    meeting_id: str | None  # attached to this meeting's outcome of the case


class Snapshots:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, snapshot: Snapshot) -> Snapshot:
        made = Snapshot(**{**snapshot.__dict__, "made": snapshot.made or now_iso()})
        await self.db.write(
            "INSERT INTO snapshots (id, case_id, slide_id, teaching_id, made_by, made, x, y, width,"
            " height, image_width, image_height, caption, meeting_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                made.id, made.case_id, made.slide_id, made.teaching_id, made.made_by, made.made,
                made.x, made.y, made.width, made.height, made.image_width, made.image_height,
                made.caption, made.meeting_id,
            ),
        )  # fmt: skip
        return made

    async def get(self, snapshot_id: str) -> Snapshot | None:
        row = await self.db.one("SELECT * FROM snapshots WHERE id = ?", (snapshot_id,))
        return Snapshot(**dict(row)) if row else None

    async def of_outcome(self, meeting_id: str, case_id: str) -> list[Snapshot]:
        """The snapshots attached to a meeting's outcome of a case, oldest first."""
        rows = await self.db.all(
            "SELECT * FROM snapshots WHERE meeting_id = ? AND case_id = ? ORDER BY made, id",
            (meeting_id, case_id),
        )
        return [Snapshot(**dict(r)) for r in rows]
