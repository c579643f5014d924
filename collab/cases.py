"""Creating and working a case: the checks, the catalogue change and its audit entry, for the
web (collab.web.cases) and the command line (collab cases add) alike."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from collab.domain import (
    PRIORITIES,
    STATUSES,
    Case,
    Organisation,
    Patient,
    User,
    may_manage_cases,
    status_steps,
)
from collab.store import Database
from collab.store.database import StoreError

MAX_ACCESSION = 40
MAX_NAME = 200
MAX_TEXT = 4000  # specimen, clinical details
MAX_NOTE = 10_000
_ACCESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./_-]*")


class CaseRefused(Exception):
    """A one-line reason, fit to show the person who asked, and the HTTP status it answers."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class CaseFields:
    """What a person types about a case; blank strings mean "not recorded"."""

    priority: str = "routine"
    patient_name: str = ""
    nhs_number: str = ""
    date_of_birth: str = ""
    specimen: str = ""
    clinical_details: str = ""


def _blank(text: str) -> str | None:
    return text.strip() or None


def checked_patient(fields: CaseFields) -> Patient:
    """The patient's details, or CaseRefused saying which one to correct."""
    name = _blank(fields.patient_name)
    if name and (len(name) > MAX_NAME or any(ord(c) < 32 for c in name)):
        raise CaseRefused(f"The patient's name must be one line of at most {MAX_NAME} characters.")
    nhs = _blank(fields.nhs_number)
    if nhs and not re.fullmatch(r"\d{10}", nhs.replace(" ", "").replace("-", "")):
        raise CaseRefused("An NHS number has 10 digits (spaces allowed), e.g. 943 476 5919.")
    born = _blank(fields.date_of_birth)
    if born:
        try:
            day = date.fromisoformat(born)
        except ValueError:
            raise CaseRefused("Give the date of birth as YYYY-MM-DD, e.g. 1958-03-14.") from None
        if day > date.today() or day.year < 1880:
            raise CaseRefused("The date of birth is not a possible one: check the year.")
        born = day.isoformat()
    return Patient(name, nhs, born)


def _checked(fields: CaseFields) -> tuple[Patient, str | None, str | None]:
    if fields.priority not in PRIORITIES:
        raise CaseRefused(f"Priority must be one of: {', '.join(PRIORITIES)}.")
    for label, text in (("specimen", fields.specimen), ("clinical details", fields.clinical_details)):
        if len(text) > MAX_TEXT:
            raise CaseRefused(f"The {label} must be at most {MAX_TEXT} characters.")
    return checked_patient(fields), _blank(fields.specimen), _blank(fields.clinical_details)


def _refuse_unless_manager(user: User | None, org_id: int) -> None:
    if user is not None and not may_manage_cases(user, org_id):
        raise CaseRefused(
            "Only pathologists and administrators of the case's trust may create or change its cases.", 403
        )


async def create_case(
    db: Database,
    accession: str,
    org: Organisation,
    fields: CaseFields,
    *,
    assigned_to: int | None = None,
    by: User | None,
    client: str,
) -> Case:
    """Create a case of ``org`` (``by`` None: the command line, which may create for any trust)."""
    _refuse_unless_manager(by, org.id)
    accession = accession.strip()
    if not accession or len(accession) > MAX_ACCESSION or not _ACCESSION.fullmatch(accession):
        raise CaseRefused(
            f"An accession number is 1 to {MAX_ACCESSION} letters, digits, spaces or . / _ -, e.g. S26-1234."
        )
    patient, specimen, clinical_details = _checked(fields)
    try:
        case = await db.catalog.add_case(
            accession,
            org.id,
            fields.priority,
            patient=patient,
            specimen=specimen,
            clinical_details=clinical_details,
            assigned_to=assigned_to,
        )
    except StoreError as exc:
        raise CaseRefused(f"{exc}: choose another accession number.", 409) from None
    await db.audit.record(
        "case created",
        user=by,
        username=None if by else "command line",
        client=client,
        case_id=case.id,
        detail=f"{org.name}, {fields.priority}",
    )
    return case


async def edit_case(db: Database, case: Case, fields: CaseFields, *, by: User, client: str) -> list[str]:
    """Change a case's priority, patient and specimen details; returns the names of what changed."""
    _refuse_unless_manager(by, case.org_id)
    patient, specimen, clinical_details = _checked(fields)
    before = (case.priority, case.patient, case.specimen, case.clinical_details)
    after = (fields.priority, patient, specimen, clinical_details)
    changed = [
        n
        for n, b, a in zip(
            ("priority", "patient", "specimen", "clinical details"), before, after, strict=True
        )
        if b != a
    ]
    if changed:
        await db.catalog.update_case(
            case.id,
            priority=fields.priority,
            patient=patient,
            specimen=specimen,
            clinical_details=clinical_details,
        )
        # The audit names what changed, never the identifiers themselves.
        await db.audit.record(
            "case changed", user=by, client=client, case_id=case.id, detail=", ".join(changed)
        )
    return changed


async def change_status(db: Database, case: Case, status: str, *, by: User, client: str) -> None:
    """Move a case one step along new, in review, ready for MDT, reported (or back one step)."""
    _refuse_unless_manager(by, case.org_id)
    if status not in STATUSES:
        raise CaseRefused(f"Status must be one of: {', '.join(STATUSES)}.")
    if status == case.status:
        return
    steps = status_steps(case.status)
    if status not in steps:
        allowed = " or ".join(f"'{s}'" for s in steps) or "nothing: it is reported"
        raise CaseRefused(f"A case that is '{case.status}' can move to {allowed}, not to '{status}'.", 409)
    if not await db.catalog.set_status(case.id, status, was=case.status):
        raise CaseRefused(
            "Someone else changed this case's status just now: reload the page and try again.", 409
        )
    await db.audit.record(
        "case status changed", user=by, client=client, case_id=case.id, detail=f"{case.status} -> {status}"
    )


async def add_note(db: Database, case: Case, body: str, *, by: User, contribute: bool, client: str) -> int:
    """Add a dated note to a case, by someone who may contribute to it."""
    if not contribute:
        raise CaseRefused("You may read this case but not add notes to it.", 403)
    body = body.strip()
    if not body:
        raise CaseRefused("Write the note before adding it.")
    if len(body) > MAX_NOTE:
        raise CaseRefused(f"A note must be at most {MAX_NOTE:,} characters.")
    note_id = await db.case_notes.add(case.id, by.id, body)
    await db.audit.record(
        "case note added", user=by, client=client, case_id=case.id, detail=f"note {note_id}"
    )
    return note_id
