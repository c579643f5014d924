"""Organisations, cases, their slides and who they are shared with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collab.domain import NO_PATIENT, PRIORITIES, Case, Organisation, Patient, Share, SlideRecord
from collab.store.database import Row, StoreError, new_id, now_iso
from collab.store.errors import INTEGRITY_ERRORS

if TYPE_CHECKING:
    from collab.store.database import Database

PRIORITY_ORDER = "CASE priority WHEN 'urgent' THEN 0 WHEN '2ww' THEN 1 ELSE 2 END"


class Catalog:
    """The catalogue of organisations, cases and slides."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- organisations --------------------------------------------------------

    async def add_org(self, name: str, network: str | None = None) -> Organisation:
        """Create an organisation; names are unique."""
        name = name.strip()
        if not name:
            raise StoreError("an organisation needs a name")
        try:
            org_id = await self.db.write(
                "INSERT INTO organisations (name, network) VALUES (?, ?)", (name, network)
            )
        except INTEGRITY_ERRORS:
            raise StoreError(f"an organisation named {name!r} already exists") from None
        assert org_id is not None
        return Organisation(org_id, name, network)

    async def org_by_name(self, name: str) -> Organisation | None:
        row = await self.db.one("SELECT * FROM organisations WHERE name = ?", (name,))
        return Organisation(row["id"], row["name"], row["network"]) if row else None

    async def org(self, org_id: int) -> Organisation | None:
        row = await self.db.one("SELECT * FROM organisations WHERE id = ?", (org_id,))
        return Organisation(row["id"], row["name"], row["network"]) if row else None

    # -- cases ----------------------------------------------------------------

    async def add_case(
        self,
        accession: str,
        org_id: int,
        priority: str = "routine",
        *,
        patient: Patient = NO_PATIENT,
        specimen: str | None = None,
        clinical_details: str | None = None,
        assigned_to: int | None = None,
    ) -> Case:
        """Create a case owned by an organisation."""
        accession = accession.strip()
        if not accession:
            raise StoreError("a case needs an accession number")
        if priority not in PRIORITIES:
            raise StoreError(f"priority must be one of {', '.join(PRIORITIES)}")
        case = Case(
            new_id(),
            accession,
            org_id,
            priority,
            "new",
            now_iso(),
            patient,
            specimen,
            clinical_details,
            assigned_to,
        )
        try:
            await self.db.write(
                "INSERT INTO cases (id, accession, org_id, priority, status, created, patient_name,"
                " nhs_number, date_of_birth, specimen, clinical_details, assigned_to)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.id,
                    case.accession,
                    org_id,
                    priority,
                    case.status,
                    case.created,
                    patient.name,
                    patient.nhs_number,
                    patient.date_of_birth,
                    specimen,
                    clinical_details,
                    assigned_to,
                ),
            )
        except INTEGRITY_ERRORS:
            raise StoreError(f"a case with accession {accession!r} already exists") from None
        return case

    async def case(self, case_id: str) -> Case | None:
        row = await self.db.one("SELECT * FROM cases WHERE id = ?", (case_id,))
        return _case(row) if row else None

    async def set_priority(self, case_id: str, priority: str) -> None:
        await self.db.write("UPDATE cases SET priority = ? WHERE id = ?", (priority, case_id))

    async def update_case(
        self,
        case_id: str,
        *,
        priority: str,
        patient: Patient,
        specimen: str | None,
        clinical_details: str | None,
    ) -> None:
        """Change what the case page's edit form changes (checked by collab.cases)."""
        await self.db.write(
            "UPDATE cases SET priority = ?, patient_name = ?, nhs_number = ?, date_of_birth = ?,"
            " specimen = ?, clinical_details = ? WHERE id = ?",
            (
                priority,
                patient.name,
                patient.nhs_number,
                patient.date_of_birth,
                specimen,
                clinical_details,
                case_id,
            ),
        )

    async def set_status(self, case_id: str, status: str, *, was: str) -> bool:
        """Move a case from status ``was`` to ``status``; False if it was no longer ``was``."""
        cursor = await self.db.conn.execute(
            "UPDATE cases SET status = ? WHERE id = ? AND status = ?", (status, case_id, was)
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def case_by_accession(self, accession: str) -> Case | None:
        row = await self.db.one("SELECT * FROM cases WHERE accession = ?", (accession,))
        return _case(row) if row else None

    async def cases(self) -> list[Case]:
        """Every case, most urgent first, oldest first within a priority."""
        rows = await self.db.all(f"SELECT * FROM cases ORDER BY {PRIORITY_ORDER}, created, accession")
        return [_case(r) for r in rows]

    async def visible_cases(self, user_org_id: int, user_id: int, *, own_org: bool) -> list[Case]:
        """Cases of the organisation (when ``own_org``) and those shared with the person or it."""
        rows = await self.db.all(
            "SELECT * FROM cases WHERE (? <> 0 AND org_id = ?) OR id IN (SELECT case_id FROM case_shares"
            " WHERE revoked IS NULL AND (user_id = ? OR org_id = ?))"
            f" ORDER BY {PRIORITY_ORDER}, created, accession",
            (own_org, user_org_id, user_id, user_org_id),
        )
        return [_case(r) for r in rows]

    # -- sharing --------------------------------------------------------------

    async def share(
        self, case_id: str, *, user_id: int | None, org_id: int | None, contributing: bool
    ) -> Share:
        """Open a case to a person or an organisation (replacing an earlier share with them)."""
        # Only a share made by hand is replaced: one made for a second opinion ends with its request.
        await self.db.conn.execute(
            "UPDATE case_shares SET revoked = ? WHERE case_id = ? AND revoked IS NULL"
            " AND user_id IS ? AND org_id IS ? AND source IS NULL",
            (now_iso(), case_id, user_id, org_id),
        )
        share_id = await self.db.write(
            "INSERT INTO case_shares (case_id, user_id, org_id, contributing, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (case_id, user_id, org_id, int(contributing), now_iso()),
        )
        assert share_id is not None
        return Share(share_id, case_id, user_id, org_id, contributing)

    async def revoke(self, share_id: int) -> bool:
        """End a share; False if there was no such open share."""
        cursor = await self.db.conn.execute(
            "UPDATE case_shares SET revoked = ? WHERE id = ? AND revoked IS NULL", (now_iso(), share_id)
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def ended_shares(self, case_id: str) -> list[Share]:
        """The case's shares that have been revoked or have ended."""
        return await self._shares(case_id, ended=True)

    async def shares(self, case_id: str) -> list[Share]:
        return await self._shares(case_id, ended=False)

    async def _shares(self, case_id: str, *, ended: bool) -> list[Share]:
        revoked = "revoked IS NOT NULL" if ended else "revoked IS NULL"
        rows = await self.db.all(
            f"SELECT * FROM case_shares WHERE case_id = ? AND {revoked} ORDER BY id", (case_id,)
        )
        return [
            Share(r["id"], r["case_id"], r["user_id"], r["org_id"], bool(r["contributing"]), r["source"])
            for r in rows
        ]

    # -- slides ---------------------------------------------------------------

    async def add_slide(
        self, case_id: str, path: str, *, width: int, height: int, vendor: str | None, stain: str | None
    ) -> tuple[SlideRecord, bool]:
        """Register a slide file with a case; returns the record and whether it is new."""
        existing = await self.db.one("SELECT * FROM slides WHERE case_id = ? AND path = ?", (case_id, path))
        if existing:
            return _slide(existing), False
        record = SlideRecord(new_id(), case_id, path, stain, width, height, vendor, now_iso())
        await self.db.write(
            "INSERT INTO slides (id, case_id, path, stain, width, height, vendor, added)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, case_id, path, stain, width, height, vendor, record.added),
        )
        return record, True

    async def slide(self, slide_id: str) -> SlideRecord | None:
        row = await self.db.one("SELECT * FROM slides WHERE id = ?", (slide_id,))
        return _slide(row) if row else None

    async def slides_of_case(self, case_id: str) -> list[SlideRecord]:
        rows = await self.db.all("SELECT * FROM slides WHERE case_id = ? ORDER BY added, rowid", (case_id,))
        return [_slide(r) for r in rows]


def _case(row: Row) -> Case:
    return Case(
        row["id"],
        row["accession"],
        row["org_id"],
        row["priority"],
        row["status"],
        row["created"],
        Patient(row["patient_name"], row["nhs_number"], row["date_of_birth"]),
        row["specimen"],
        row["clinical_details"],
        row["assigned_to"],
    )


def _slide(row: Row) -> SlideRecord:
    return SlideRecord(
        row["id"],
        row["case_id"],
        row["path"],
        row["stain"],
        row["width"],
        row["height"],
        row["vendor"],
        row["added"],
    )
