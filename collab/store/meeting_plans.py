"""Changing a planned meeting: its details, status, agenda, attendees, and the shares they imply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.domain import Meeting, meeting_source
from collab.store.database import now_iso
from collab.store.meetings import _meeting

if TYPE_CHECKING:
    from collab.store.database import Database


@dataclass(frozen=True)
class PlannedItem:
    """An agenda case as the coordinator plans it."""

    case_id: str
    planned_minutes: int
    question: str
    presenter: int | None


class MeetingPlans:
    """Writes of meeting planning; each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def update(self, meeting_id: str, *, name: str, starts: str, chair: int, coordinator: int) -> None:
        """Change a meeting's details; the chair and the coordinator are always participants."""
        conn = self.db.conn
        await conn.execute(
            "UPDATE meetings SET name = ?, starts = ?, chair = ?, coordinator = ? WHERE id = ?",
            (name, starts, chair, coordinator, meeting_id),
        )
        for user_id in (chair, coordinator):
            await conn.execute(
                "INSERT OR IGNORE INTO meeting_attendees (meeting_id, user_id) VALUES (?, ?)",
                (meeting_id, user_id),
            )
        await conn.commit()

    async def set_status(self, meeting_id: str, status: str) -> None:
        """Cancel (``cancelled``) or reschedule (``scheduled``, which also ends a closure)."""
        conn = self.db.conn
        await conn.execute("UPDATE meetings SET status = ? WHERE id = ?", (status, meeting_id))
        if status == "scheduled":
            await conn.execute("DELETE FROM meeting_closures WHERE meeting_id = ?", (meeting_id,))
        await conn.commit()

    async def write_agenda(self, meeting_id: str, items: list[PlannedItem]) -> None:
        """Make the agenda exactly ``items``, in that order (outcomes of kept cases stay)."""
        conn = self.db.conn
        kept = [item.case_id for item in items]
        marks = ",".join("?" * len(kept))
        gone = f" AND case_id NOT IN ({marks})" if kept else ""
        await conn.execute(f"DELETE FROM meeting_outcomes WHERE meeting_id = ?{gone}", (meeting_id, *kept))
        await conn.execute(f"DELETE FROM meeting_cases WHERE meeting_id = ?{gone}", (meeting_id, *kept))
        for position, item in enumerate(items, start=1):
            await conn.execute(
                "INSERT INTO meeting_cases"
                " (meeting_id, case_id, position, planned_minutes, question, presenter)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (meeting_id, case_id) DO UPDATE SET"
                " position = excluded.position, planned_minutes = excluded.planned_minutes,"
                " question = excluded.question, presenter = excluded.presenter",
                (meeting_id, item.case_id, position, item.planned_minutes, item.question, item.presenter),
            )
        await conn.commit()

    async def add_attendee(self, meeting_id: str, user_id: int) -> bool:
        """False if they already take part."""
        cursor = await self.db.conn.execute(
            "INSERT OR IGNORE INTO meeting_attendees (meeting_id, user_id) VALUES (?, ?)",
            (meeting_id, user_id),
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def remove_attendee(self, meeting_id: str, user_id: int) -> bool:
        """False if they did not take part."""
        cursor = await self.db.conn.execute(
            "DELETE FROM meeting_attendees WHERE meeting_id = ? AND user_id = ?", (meeting_id, user_id)
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def sync_shares(self, meeting_id: str, wanted: set[tuple[str, int, bool]]) -> None:
        """Make the meeting's open shares exactly ``wanted`` ((case, user, contributing))."""
        source = meeting_source(meeting_id)
        rows = await self.db.all(
            "SELECT id, case_id, user_id, contributing FROM case_shares WHERE source = ? AND revoked IS NULL",
            (source,),
        )
        have = {(r["case_id"], r["user_id"], bool(r["contributing"])): r["id"] for r in rows}
        conn = self.db.conn
        now = now_iso()
        for key, share_id in have.items():
            if key not in wanted:
                await conn.execute("UPDATE case_shares SET revoked = ? WHERE id = ?", (now, share_id))
        for case_id, user_id, contributing in wanted - have.keys():
            await conn.execute(
                "INSERT INTO case_shares (case_id, user_id, org_id, contributing, created, source)"
                " VALUES (?, ?, NULL, ?, ?, ?)",
                (case_id, user_id, int(contributing), now, source),
            )
        await conn.commit()

    async def planned_by(self, user_id: int, *, now: str) -> list[Meeting]:
        """Upcoming open meetings this person chairs or coordinates (to add cases to), soonest first."""
        rows = await self.db.all(
            "SELECT * FROM meetings WHERE (chair = ? OR coordinator = ?) AND status = 'scheduled'"
            " AND starts >= ? AND id NOT IN (SELECT meeting_id FROM meeting_closures) ORDER BY starts, id",
            (user_id, user_id, now),
        )
        return [_meeting(r) for r in rows]
