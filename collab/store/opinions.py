"""Second-opinion requests, and the share each one opens for as long as it is open."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collab.domain import OPEN_OPINION_STATES, OpinionRequest, opinion_source
from collab.store.database import Row, now_iso

if TYPE_CHECKING:
    from collab.store.database import Database

# The requestee's worklist: urgent first, then the longest waiting.
WORKLIST_ORDER = "ORDER BY urgent DESC, created, id"
IS_OPEN = "state IN (" + ", ".join(f"'{state}'" for state in OPEN_OPINION_STATES) + ")"


class Opinions:
    """Requests for a second opinion; opening and closing one also opens and ends its share."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        case_id: str,
        *,
        requested_by: int,
        to_user: int | None,
        to_org: int | None,
        question: str,
        urgent: bool,
    ) -> OpinionRequest:
        """Record a request and open the case (contributing) to whoever it is asked of."""
        now = now_iso()
        cursor = await self.db.conn.execute(
            "INSERT INTO opinion_requests (case_id, requested_by, to_user, to_org, question, urgent,"
            " state, created, updated) VALUES (?, ?, ?, ?, ?, ?, 'requested', ?, ?)",
            (case_id, requested_by, to_user, to_org, question, int(urgent), now, now),
        )
        request_id = cursor.lastrowid
        assert request_id is not None
        # In the same transaction: a request without its share would be one nobody can answer.
        await self.db.conn.execute(
            "INSERT INTO case_shares (case_id, user_id, org_id, contributing, created, source)"
            " VALUES (?, ?, ?, 1, ?, ?)",
            (case_id, to_user, to_org, now, opinion_source(request_id)),
        )
        await self.db.conn.commit()
        return OpinionRequest(
            request_id, case_id, requested_by, to_user, to_org, question, urgent, "requested", now, now
        )

    async def get(self, request_id: int) -> OpinionRequest | None:
        row = await self.db.one("SELECT * FROM opinion_requests WHERE id = ?", (request_id,))
        return _request(row) if row else None

    async def of_case(self, case_id: str) -> list[OpinionRequest]:
        """A case's requests, oldest first."""
        rows = await self.db.all("SELECT * FROM opinion_requests WHERE case_id = ? ORDER BY id", (case_id,))
        return [_request(r) for r in rows]

    async def asked_of(self, user_id: int, org_id: int | None, *, open_only: bool) -> list[OpinionRequest]:
        """Requests asked of the person, or of the organisation when ``org_id`` is given."""
        rows = await self.db.all(
            "SELECT * FROM opinion_requests WHERE (to_user = ? OR to_org = ?)"
            f"{f' AND {IS_OPEN}' if open_only else ''} {WORKLIST_ORDER}",
            (user_id, org_id),
        )
        return [_request(r) for r in rows]

    async def asked_by(self, user_id: int) -> list[OpinionRequest]:
        """Requests the person made, newest first."""
        rows = await self.db.all(
            "SELECT * FROM opinion_requests WHERE requested_by = ? ORDER BY id DESC", (user_id,)
        )
        return [_request(r) for r in rows]

    async def open_between(
        self, case_id: str, to_user: int | None, to_org: int | None
    ) -> OpinionRequest | None:
        """The open request on a case asked of that person or organisation, if any."""
        row = await self.db.one(
            "SELECT * FROM opinion_requests WHERE case_id = ? AND to_user IS ? AND to_org IS ?"
            f" AND {IS_OPEN}",
            (case_id, to_user, to_org),
        )
        return _request(row) if row else None

    async def move(
        self, request_id: int, *, from_state: str, to_state: str, by: int, opinion: str | None = None
    ) -> OpinionRequest | None:
        """Change a request's state if it is still ``from_state``; None if someone moved it first.

        A request that leaves the open states ends its share in the same transaction.
        """
        cursor = await self.db.conn.execute(
            "UPDATE opinion_requests SET state = ?, updated = ?,"
            " accepted_by = CASE WHEN ? = 'accepted' THEN ? ELSE accepted_by END,"
            " answered_by = CASE WHEN ? = 'answered' THEN ? ELSE answered_by END,"
            " opinion = COALESCE(?, opinion)"
            " WHERE id = ? AND state = ?",
            (to_state, now_iso(), to_state, by, to_state, by, opinion, request_id, from_state),
        )
        if cursor.rowcount != 1:
            return None  # nothing was changed
        if to_state not in OPEN_OPINION_STATES:
            await self.db.conn.execute(
                "UPDATE case_shares SET revoked = ? WHERE source = ? AND revoked IS NULL",
                (now_iso(), opinion_source(request_id)),
            )
        await self.db.conn.commit()
        return await self.get(request_id)


def _request(row: Row) -> OpinionRequest:
    return OpinionRequest(
        row["id"],
        row["case_id"],
        row["requested_by"],
        row["to_user"],
        row["to_org"],
        row["question"],
        bool(row["urgent"]),
        row["state"],
        row["created"],
        row["updated"],
        row["accepted_by"],
        row["answered_by"],
        row["opinion"],
    )
