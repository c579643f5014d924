"""Organisations (hospital trusts) and the networks they belong to, as administrators see them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.domain import Organisation
from collab.store.database import StoreError
from collab.store.errors import INTEGRITY_ERRORS

if TYPE_CHECKING:
    from collab.store.database import Database


@dataclass(frozen=True)
class OrganisationSummary:
    organisation: Organisation
    people: int
    cases: int


class Organisations:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def summaries(self) -> list[OrganisationSummary]:
        """Every organisation by name, with how many people and cases it has (one query)."""
        rows = await self.db.all(
            "SELECT o.id, o.name, o.network,"
            " (SELECT count(*) FROM users u WHERE u.org_id = o.id) AS people,"
            " (SELECT count(*) FROM cases c WHERE c.org_id = o.id) AS cases"
            " FROM organisations o ORDER BY o.name COLLATE NOCASE"
        )
        return [
            OrganisationSummary(Organisation(r["id"], r["name"], r["network"]), r["people"], r["cases"])
            for r in rows
        ]

    async def change(self, org_id: int, *, name: str, network: str | None) -> Organisation | None:
        """Rename an organisation or move it to another network (None: in none); None if absent."""
        if await self.db.one("SELECT 1 FROM organisations WHERE id = ?", (org_id,)) is None:
            return None
        try:
            await self.db.write(
                "UPDATE organisations SET name = ?, network = ? WHERE id = ?", (name, network, org_id)
            )
        except INTEGRITY_ERRORS:
            raise StoreError(f"an organisation named {name!r} already exists") from None
        return Organisation(org_id, name, network)
