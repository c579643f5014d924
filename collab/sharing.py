"""Sharing a case: the catalogue change and its audit entry, for the web and the command line."""

from __future__ import annotations

from collab.domain import Case, Organisation, Share, User
from collab.store import Database


async def share_case(
    db: Database,
    case: Case,
    *,
    person: User | None,
    org: Organisation | None,
    contributing: bool,
    by: User | None,
    client: str,
) -> Share:
    """Open ``case`` to a person or an organisation, and audit it."""
    made = await db.catalog.share(
        case.id,
        user_id=person.id if person else None,
        org_id=org.id if org else None,
        contributing=contributing,
    )
    target = f"user {person.username}" if person else f"organisation {org.name}" if org else "nobody"
    await db.audit.record(
        "case shared",
        user=by,
        username=None if by else "command line",
        client=client,
        case_id=case.id,
        detail=f"{target}, {'contributing' if contributing else 'read-only'} (share {made.id})",
    )
    return made
