"""Teaching sessions: their slides under aliases, the students who joined, quiz answers, and
the session's shared document (a snapshot plus updates, like a case's, in its own tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.store.database import Row, StoreError, new_id, now_iso
from collab.store.documents import Documents
from collab.store.errors import INTEGRITY_ERRORS

if TYPE_CHECKING:
    from collab.store.database import Database


@dataclass(frozen=True)
class TeachingSession:
    """A session an educator runs; students join it with ``code`` while it is open."""

    id: str
    title: str
    educator: int
    code: str
    created: str
    closed: str | None
    pen: int | None  # the participant who holds the pen, if anyone

    @property
    def open(self) -> bool:
        return self.closed is None


@dataclass(frozen=True)
class TeachingSlide:
    """A slide of a session's item, known to students only by ``alias``."""

    alias: str
    item: int  # 1-based position of its case in the session
    number: int  # 1-based position of the slide within its case
    case_id: str
    slide_id: str
    width: int
    height: int


@dataclass(frozen=True)
class Participant:
    """A student in a session: a guest with a display name, or a signed-in student."""

    id: int
    session_id: str
    display_name: str
    user_id: int | None

    @property
    def peer_id(self) -> int:
        """The id the live room knows them by: negative, so it never equals a user's."""
        return -self.id


@dataclass(frozen=True)
class Answer:
    """One student's point for one quiz question, in level-0 pixels of the question's slide."""

    participant: int
    display_name: str
    slide: str
    x: float
    y: float


class Teaching:
    """Reads and writes teaching sessions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.documents = TeachingDocuments(db)

    async def add_session(
        self, title: str, educator: int, code: str, slides: list[tuple[int, int, str, str, int, int]]
    ) -> TeachingSession:
        """A new open session with its slides ((item, number, case id, slide id, width, height)),
        in one transaction. Slide aliases are made here."""
        session_id = new_id()
        created = now_iso()
        try:
            await self.db.conn.execute(
                "INSERT INTO teaching_sessions (id, title, educator, code, created) VALUES (?, ?, ?, ?, ?)",
                (session_id, title, educator, code, created),
            )
        except INTEGRITY_ERRORS:
            await self.db.conn.rollback()
            raise StoreError("that join code is in use by another open session") from None
        await self.db.conn.executemany(
            "INSERT INTO teaching_slides (session_id, alias, item, number, case_id, slide_id, width, height)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(session_id, alias, *rest) for alias, *rest in _aliased(slides)],
        )
        await self.db.conn.commit()
        return TeachingSession(session_id, title, educator, code, created, None, None)

    async def code_in_use(self, code: str) -> bool:
        return (
            await self.db.one("SELECT 1 FROM teaching_sessions WHERE code = ? AND closed IS NULL", (code,))
            is not None
        )

    async def session(self, session_id: str) -> TeachingSession | None:
        row = await self.db.one("SELECT * FROM teaching_sessions WHERE id = ?", (session_id,))
        return _session(row) if row else None

    async def open_session_by_code(self, code: str) -> TeachingSession | None:
        row = await self.db.one("SELECT * FROM teaching_sessions WHERE code = ? AND closed IS NULL", (code,))
        return _session(row) if row else None

    async def sessions_of(self, educator: int) -> list[TeachingSession]:
        """An educator's sessions, open ones first, newest first."""
        rows = await self.db.all(
            "SELECT * FROM teaching_sessions WHERE educator = ? ORDER BY closed IS NOT NULL, created DESC",
            (educator,),
        )
        return [_session(r) for r in rows]

    async def close(self, session_id: str) -> None:
        await self.db.write(
            "UPDATE teaching_sessions SET closed = ?, pen = NULL WHERE id = ? AND closed IS NULL",
            (now_iso(), session_id),
        )

    async def set_pen(self, session_id: str, participant: int | None) -> None:
        await self.db.write("UPDATE teaching_sessions SET pen = ? WHERE id = ?", (participant, session_id))

    async def slides(self, session_id: str) -> list[TeachingSlide]:
        """The session's slides in order: by item, then by number."""
        rows = await self.db.all(
            "SELECT alias, item, number, case_id, slide_id, width, height FROM teaching_slides"
            " WHERE session_id = ? ORDER BY item, number",
            (session_id,),
        )
        return [TeachingSlide(*tuple(r)) for r in rows]

    async def case_ids(self, session_id: str) -> list[str]:
        rows = await self.db.all(
            "SELECT DISTINCT case_id, item FROM teaching_slides WHERE session_id = ? ORDER BY item",
            (session_id,),
        )
        return [r["case_id"] for r in rows]

    async def add_participant(
        self, session_id: str, display_name: str, token_hash: str, user_id: int | None
    ) -> Participant:
        cursor = await self.db.conn.execute(
            "INSERT INTO teaching_participants (session_id, display_name, token_hash, user_id, joined)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_id, display_name, token_hash, user_id, now_iso()),
        )
        await self.db.conn.commit()
        assert cursor.lastrowid is not None
        return Participant(cursor.lastrowid, session_id, display_name, user_id)

    async def participant_by_token(self, token_hash: str) -> Participant | None:
        row = await self.db.one(
            "SELECT id, session_id, display_name, user_id FROM teaching_participants WHERE token_hash = ?",
            (token_hash,),
        )
        return Participant(*tuple(row)) if row else None

    async def participant(self, session_id: str, participant_id: int) -> Participant | None:
        row = await self.db.one(
            "SELECT id, session_id, display_name, user_id FROM teaching_participants"
            " WHERE id = ? AND session_id = ?",
            (participant_id, session_id),
        )
        return Participant(*tuple(row)) if row else None

    async def joined(self, participant_id: int) -> str | None:
        """When a participant joined (their place lasts a fixed time from then); None if unknown."""
        row = await self.db.one("SELECT joined FROM teaching_participants WHERE id = ?", (participant_id,))
        return str(row["joined"]) if row else None

    async def answer(
        self, session_id: str, question: int, participant: int, slide: str, x: float, y: float
    ) -> None:
        """Record a student's point; a second answer to the same question replaces the first."""
        await self.db.write(
            "INSERT INTO teaching_answers (session_id, question, participant, slide, x, y, answered)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, question, participant)"
            " DO UPDATE SET slide = excluded.slide, x = excluded.x, y = excluded.y,"
            " answered = excluded.answered",
            (session_id, question, participant, slide, x, y, now_iso()),
        )

    async def answers(self, session_id: str, question: int) -> list[Answer]:
        rows = await self.db.all(
            "SELECT a.participant, p.display_name, a.slide, a.x, a.y FROM teaching_answers a"
            " JOIN teaching_participants p ON p.id = a.participant"
            " WHERE a.session_id = ? AND a.question = ? ORDER BY a.answered, a.participant",
            (session_id, question),
        )
        return [Answer(*tuple(r)) for r in rows]

    async def answer_count(self, session_id: str, question: int) -> int:
        row = await self.db.one(
            "SELECT count(*) FROM teaching_answers WHERE session_id = ? AND question = ?",
            (session_id, question),
        )
        return int(row[0]) if row else 0


def _aliased(
    slides: list[tuple[int, int, str, str, int, int]],
) -> list[tuple[str, int, int, str, str, int, int]]:
    """Random aliases: they say nothing of the case, the slide, or their order."""
    return [(new_id(), *slide) for slide in slides]


def _session(row: Row) -> TeachingSession:
    return TeachingSession(
        row["id"], row["title"], row["educator"], row["code"], row["created"], row["closed"], row["pen"]
    )


class TeachingDocuments(Documents):
    """The shared documents of teaching sessions, keyed by session id (see Documents)."""

    UPDATES, SNAPSHOTS, KEY = "teaching_doc_updates", "teaching_doc_snapshots", "session_id"

    async def append(
        self,
        updates: list[tuple[str, bytes]],
        clients: list[tuple[str, int, int]] | None = None,
        *_: object,
        **__: object,
    ) -> None:
        """As Documents.append; what case rooms save besides (e.g. presenter paths) has no place here."""
        await self.db.batch(
            [
                ("INSERT INTO teaching_doc_updates (session_id, update_data) VALUES (?, ?)", list(updates)),
                (
                    "INSERT OR IGNORE INTO teaching_doc_clients (session_id, client_id, peer_id)"
                    " VALUES (?, ?, ?)",
                    list(clients or []),
                ),
            ]
        )

    async def clients(self, case_id: str) -> dict[int, int]:
        rows = await self.db.all(
            "SELECT client_id, peer_id FROM teaching_doc_clients WHERE session_id = ?", (case_id,)
        )
        return {int(r["client_id"]): int(r["peer_id"]) for r in rows}
