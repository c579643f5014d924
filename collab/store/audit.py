"""The append-only audit log: who did what, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.domain import User
from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database

EVENTS = (
    "login",
    "login failed",
    "logout",
    "case opened",
    "slide opened",
    "analysis requested",
    "analysis cancelled",
    "analysis finished",
    "analysis failed",
    "analysis posted",
    "analysis flag confirmed",
    "analysis flag dismissed",
    "case shared",
    "share revoked",
    "token created",
    "token revoked",
    "opinion requested",
    "opinion accepted",
    "opinion declined",
    "opinion answered",
    "opinion withdrawn",
    "meeting created",
    "meeting outcome recorded",
    "meeting outcome signed off",
    "meeting closed",
    "meeting changed",
    "meeting cancelled",
    "meeting reopened",
    "meeting agenda changed",
    "meeting attendee added",
    "meeting attendee removed",
    "teaching session created",
    "teaching session joined",
    "teaching join failed",  # a join code that opens no session (bounded by collab.throttle)
    "teaching pen passed",
    "teaching quiz revealed",
    "teaching session closed",
    "meeting case presented",
    "document opened",  # a live connection to a case's shared document (once per connection)
    # Views and exports that carry patient data or identifiers out of the live session.
    "annotations exported",
    "annotations imported",
    "snapshot made",
    "snapshot downloaded",
    "timeline viewed",
    "meeting viewed",
    "meeting exported",
    # Accounts (collab.web.admin_users, collab.web.account): the person acted on is named in
    # ``detail`` as "user {id}"; the actor is the entry's user.
    "organisation added",
    "organisation changed",
    "user created",
    "user changed",
    "user deactivated",
    "user reactivated",
    "user unlocked",
    "invite issued",
    "invite accepted",
    "password reset",
    "password changed",
    # Slides from a browser upload or a scanner's import folder (collab.web.uploads, .unassigned).
    "slide uploaded",
    "slide upload refused",
    "slide imported",
    "slide attached",
    # Cases created and worked in the browser or the API (collab.cases).
    "case created",
    "case changed",
    "case status changed",
    "case note added",
)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: str
    event: str
    user_id: int | None
    username: str | None
    org_id: int | None
    client: str | None
    case_id: str | None
    slide_id: str | None
    detail: str | None


class AuditLog:
    """Appends to and reads the audit log; the database refuses updates and deletes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        event: str,
        *,
        user: User | None = None,
        username: str | None = None,
        client: str | None = None,
        case_id: str | None = None,
        slide_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one event."""
        assert event in EVENTS, event
        await self.db.write(
            "INSERT INTO audit (at, event, user_id, username, org_id, client, case_id, slide_id, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_iso(),
                event,
                user.id if user else None,
                user.username if user else username,
                user.org_id if user else None,
                client,
                case_id,
                slide_id,
                detail,
            ),
        )

    async def entries(self, *, limit: int = 1000, event: str | None = None) -> list[AuditEntry]:
        """The most recent entries first."""
        rows = await self.db.all(
            "SELECT * FROM audit WHERE (? IS NULL OR event = ?) ORDER BY id DESC LIMIT ?",
            (event, event, limit),
        )
        return [AuditEntry(*tuple(r)) for r in rows]
