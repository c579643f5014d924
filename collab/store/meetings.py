"""MDT meetings: participants, the agenda, outcomes, and the shares that open agenda cases."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from collab.domain import LEGACY_DECISIONS, AgendaItem, Meeting, Presentation, meeting_source
from collab.store.database import Row, new_id, now_iso

if TYPE_CHECKING:
    from collab.store.database import Database


class Meetings:
    """Meetings; creating one also opens its agenda cases to participants of other organisations."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        name: str,
        *,
        starts: str,
        org_id: int,
        chair: int,
        coordinator: int,
        attendees: list[int],
        case_ids: list[str],
        shares: list[tuple[str, int, bool]],
        series_id: str | None = None,
        commit: bool = True,
    ) -> Meeting:
        """Record a meeting, its participants and agenda, and its shares ((case, user, contributing));
        ``commit=False`` leaves the transaction open for the caller (a series is made in one)."""
        meeting = Meeting(
            new_id(), name, starts, org_id, chair, coordinator, now_iso(), "scheduled", series_id
        )
        conn = self.db.conn
        # One transaction: a meeting without its shares would show cases nobody can open.
        await conn.execute(
            "INSERT INTO meetings (id, name, starts, org_id, chair, coordinator, created, series_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (meeting.id, name, starts, org_id, chair, coordinator, meeting.created, series_id),
        )
        for user_id in dict.fromkeys([chair, coordinator, *attendees]):
            await conn.execute(
                "INSERT INTO meeting_attendees (meeting_id, user_id) VALUES (?, ?)", (meeting.id, user_id)
            )
        for position, case_id in enumerate(case_ids, start=1):
            await conn.execute(
                "INSERT INTO meeting_cases (meeting_id, case_id, position) VALUES (?, ?, ?)",
                (meeting.id, case_id, position),
            )
        for case_id, user_id, contributing in shares:
            await conn.execute(
                "INSERT INTO case_shares (case_id, user_id, org_id, contributing, created, source)"
                " VALUES (?, ?, NULL, ?, ?, ?)",
                (case_id, user_id, int(contributing), meeting.created, meeting_source(meeting.id)),
            )
        if commit:
            await conn.commit()
        return meeting

    async def get(self, meeting_id: str) -> Meeting | None:
        row = await self.db.one("SELECT * FROM meetings WHERE id = ?", (meeting_id,))
        return _meeting(row) if row else None

    async def of_user(self, user_id: int) -> list[Meeting]:
        """The meetings the person takes part in: upcoming first (soonest first), then past (latest first)."""
        rows = await self.db.all(
            "SELECT m.* FROM meetings m JOIN meeting_attendees a ON a.meeting_id = m.id"
            " WHERE a.user_id = ? ORDER BY m.starts, m.id",
            (user_id,),
        )
        found = [_meeting(r) for r in rows]
        now = now_iso()[:16]  # starts are given to the minute
        upcoming = [m for m in found if m.starts >= now]
        return upcoming + [m for m in reversed(found) if m.starts < now]

    async def attendees(self, meeting_id: str) -> list[tuple[int, str | None]]:
        """(user id, when they first opened the meeting or None), in the order they were added."""
        rows = await self.db.all(
            "SELECT user_id, attended FROM meeting_attendees WHERE meeting_id = ? ORDER BY rowid",
            (meeting_id,),
        )
        return [(r["user_id"], r["attended"]) for r in rows]

    async def mark_attended(self, meeting_id: str, user_id: int) -> None:
        """Note that the person opened the meeting (the first time only)."""
        await self.db.write(
            "UPDATE meeting_attendees SET attended = ? WHERE meeting_id = ? AND user_id = ?"
            " AND attended IS NULL",
            (now_iso(), meeting_id, user_id),
        )

    async def agenda(self, meeting_id: str) -> list[AgendaItem]:
        """The agenda in order, each case with its outcome, if one is recorded."""
        rows = await self.db.all(
            "SELECT c.case_id, c.position, c.planned_minutes, o.decision, o.notes, o.recorded_by,"
            " o.recorded, o.signed_off_by, o.signed_off, c.question, c.presenter, o.decisions"
            " FROM meeting_cases c LEFT JOIN meeting_outcomes o"
            " ON o.meeting_id = c.meeting_id AND o.case_id = c.case_id"
            " WHERE c.meeting_id = ? ORDER BY c.position",
            (meeting_id,),
        )
        items = []
        for r in rows:
            decisions = tuple(json.loads(r["decisions"])) if r["decisions"] else ()
            if not decisions and r["decision"]:
                decisions = (r["decision"],)  # recorded before several decisions were kept
            items.append(
                AgendaItem(
                    r["case_id"],
                    r["position"],
                    r["planned_minutes"],
                    r["decision"],
                    r["notes"],
                    r["recorded_by"],
                    r["recorded"],
                    r["signed_off_by"],
                    r["signed_off"],
                    question=r["question"],
                    presenter=r["presenter"],
                    decisions=decisions,
                )
            )
        return items

    async def record_outcome(
        self, meeting_id: str, case_id: str, *, decisions: list[str], notes: str, by: int
    ) -> bool:
        """Record (or change) a case's outcome; False if it has already been signed off."""
        legacy = next((d for d in decisions if d in LEGACY_DECISIONS), "other")
        cursor = await self.db.conn.execute(
            "INSERT INTO meeting_outcomes"
            " (meeting_id, case_id, decision, decisions, notes, recorded_by, recorded)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (meeting_id, case_id) DO UPDATE SET"
            " decision = excluded.decision, decisions = excluded.decisions, notes = excluded.notes,"
            " recorded_by = excluded.recorded_by, recorded = excluded.recorded"
            " WHERE meeting_outcomes.signed_off IS NULL",
            (meeting_id, case_id, legacy, json.dumps(decisions), notes, by, now_iso()),
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def sign_off(self, meeting_id: str, case_id: str, *, by: int) -> bool:
        """Sign off a recorded outcome; False if there is none, or it is already signed off."""
        cursor = await self.db.conn.execute(
            "UPDATE meeting_outcomes SET signed_off_by = ?, signed_off = ?"
            " WHERE meeting_id = ? AND case_id = ? AND signed_off IS NULL",
            (by, now_iso(), meeting_id, case_id),
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def close(self, meeting_id: str, *, by: int) -> bool:
        """Close a meeting and revoke the shares it made, in one transaction; False if already closed."""
        conn = self.db.conn
        cursor = await conn.execute(
            "INSERT OR IGNORE INTO meeting_closures (meeting_id, closed, closed_by) VALUES (?, ?, ?)",
            (meeting_id, now_iso(), by),
        )
        if cursor.rowcount != 1:
            await conn.commit()
            return False
        await conn.execute(
            "UPDATE case_shares SET revoked = ? WHERE source = ? AND revoked IS NULL",
            (now_iso(), meeting_source(meeting_id)),
        )
        # The clock of the case on screen stops with the meeting.
        await conn.execute(
            "UPDATE meeting_presentations SET ended = ? WHERE meeting_id = ? AND ended IS NULL",
            (now_iso(), meeting_id),
        )
        await conn.commit()
        return True

    async def present(self, meeting_id: str, case_id: str | None, *, by: int) -> bool:
        """Put an agenda case on screen (None: no case), ending the current one's time;
        False if that case is already on screen. Callers serialise steps of one meeting."""
        row = await self.db.one(
            "SELECT case_id FROM meeting_presentations WHERE meeting_id = ? AND ended IS NULL", (meeting_id,)
        )
        if (row["case_id"] if row else None) == case_id:
            return False
        now = now_iso()
        conn = self.db.conn
        await conn.execute(
            "UPDATE meeting_presentations SET ended = ? WHERE meeting_id = ? AND ended IS NULL",
            (now, meeting_id),
        )
        if case_id is not None:
            await conn.execute(
                "INSERT INTO meeting_presentations (meeting_id, case_id, started, presented_by)"
                " VALUES (?, ?, ?, ?)",
                (meeting_id, case_id, now, by),
            )
        await conn.commit()
        return True

    async def presentations(self, meeting_id: str) -> list[Presentation]:
        """Every stretch of time an agenda case was on screen, in order; the last may be open."""
        rows = await self.db.all(
            "SELECT case_id, started, ended, presented_by FROM meeting_presentations"
            " WHERE meeting_id = ? ORDER BY id",
            (meeting_id,),
        )
        return [Presentation(*tuple(r)) for r in rows]

    async def closed(self, meeting_id: str) -> str | None:
        """When the meeting was closed, or None while it is open."""
        row = await self.db.one("SELECT closed FROM meeting_closures WHERE meeting_id = ?", (meeting_id,))
        return str(row["closed"]) if row else None


def _meeting(row: Row) -> Meeting:
    return Meeting(
        row["id"],
        row["name"],
        row["starts"],
        row["org_id"],
        row["chair"],
        row["coordinator"],
        row["created"],
        row["status"],
        row["series_id"],
    )
