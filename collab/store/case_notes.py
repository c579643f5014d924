"""Dated notes on a case, by their author: the case's running commentary outside the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database


@dataclass(frozen=True)
class CaseNote:
    """One note; ``author_name`` is the author's display name when it was read."""

    id: int
    case_id: str
    author: int
    author_name: str
    body: str
    created: str


class CaseNotes:
    """Adds and lists a case's notes (who may is decided by collab.cases)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, case_id: str, author: int, body: str) -> int:
        note_id = await self.db.write(
            "INSERT INTO case_notes (case_id, author, body, created) VALUES (?, ?, ?, ?)",
            (case_id, author, body, now_iso()),
        )
        assert note_id is not None
        return note_id

    async def of_case(self, case_id: str) -> list[CaseNote]:
        """The case's notes, oldest first."""
        rows = await self.db.all(
            "SELECT case_notes.*, users.display_name AS author_name FROM case_notes"
            " JOIN users ON users.id = case_notes.author WHERE case_id = ? ORDER BY case_notes.id",
            (case_id,),
        )
        return [
            CaseNote(r["id"], r["case_id"], r["author"], r["author_name"], r["body"], r["created"])
            for r in rows
        ]
