"""MDT meetings: who takes part, who may record and sign off outcomes, and their audit entries.

A meeting belongs to one organisation. Its chair, coordinator and attendees take part;
agenda cases of other organisations' participants are opened to them by shares named
'meeting:{id}' (read-only for clinicians, contributing for pathologists). The coordinator
or the chair records each case's outcome; the chair signs it off, after which it is final.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from collab.domain import DECISIONS, Case, Meeting, Organisation, Presentation, User
from collab.store import Database

MAX_NAME = 200
MAX_NOTES = 20_000


class MeetingRefused(Exception):
    """A step the rules refuse; the message is fit to show the person who tried it."""


class NotAllowed(MeetingRefused):
    """This person may not take that step."""


class WrongState(MeetingRefused):
    """The outcome is not (or no longer) in a state that allows that step."""


class Invalid(MeetingRefused):
    """What was sent is missing something or is wrong."""


def takes_part(user: User, meeting: Meeting, attendee_ids: set[int]) -> bool:
    """The chair, the coordinator and the attendees see the meeting; nobody else learns of it."""
    return user.id in (meeting.chair, meeting.coordinator) or user.id in attendee_ids


def may_record(user: User, meeting: Meeting) -> bool:
    """The coordinator (or the chair) records outcomes."""
    return user.id in (meeting.chair, meeting.coordinator)


def may_sign_off(user: User, meeting: Meeting) -> bool:
    """Only the chair signs outcomes off."""
    return user.id == meeting.chair


def may_step(user: User, meeting: Meeting) -> bool:
    """The chair and the coordinator move the meeting from case to case."""
    return user.id in (meeting.chair, meeting.coordinator)


def presents(user: User, meeting: Meeting) -> bool:
    """Whose view everyone follows in the case on screen: the chair's (who may hand it over
    in the case itself, as in any live session)."""
    return user.id == meeting.chair


def seconds_spent(presentations: list[Presentation], now: datetime) -> dict[str, int]:
    """Seconds each case has been on screen, by case id; a case still on screen counts until ``now``."""
    spent: dict[str, int] = {}
    for p in presentations:
        ended = datetime.fromisoformat(p.ended) if p.ended else now
        seconds = max(0, int((ended - datetime.fromisoformat(p.started)).total_seconds()))
        spent[p.case_id] = spent.get(p.case_id, 0) + seconds
    return spent


def contributes(user: User) -> bool:
    """What a meeting share gives: pathologists contribute, everyone else reads."""
    return user.role == "pathologist"


def check_starts(starts: str) -> str:
    """``starts`` as ISO 8601 to the minute (YYYY-MM-DDTHH:MM), or Invalid."""
    try:
        parsed = datetime.fromisoformat(starts.strip())
    except ValueError:
        raise Invalid(f"{starts!r} is not a date and time such as 2026-12-01T13:00") from None
    return parsed.strftime("%Y-%m-%dT%H:%M")


async def create_meeting(
    db: Database,
    name: str,
    *,
    org: Organisation,
    starts: str,
    chair: User,
    coordinator: User,
    attendees: list[User],
    cases: list[Case],
    by: User | None,
    client: str,
    series_id: str | None = None,
) -> Meeting:
    """A new meeting with its participants and agenda; agenda cases are shared with outsiders.
    ``starts`` is the UTC minute (collab.meeting_plans.utc_from_uk converts UK local time)."""
    name = name.strip()
    if not name:
        raise Invalid("a meeting needs a name")
    if len(name) > MAX_NAME:
        raise Invalid(f"a meeting's name is at most {MAX_NAME} characters")
    starts = check_starts(starts)
    if len({c.id for c in cases}) != len(cases):
        raise Invalid("a case is on the agenda only once")
    people = list({p.id: p for p in (chair, coordinator, *attendees)}.values())
    shares = [
        (case.id, person.id, contributes(person))
        for case in cases
        for person in people
        if person.org_id != case.org_id or person.role == "student"
    ]
    meeting = await db.meetings.add(
        name,
        starts=starts,
        org_id=org.id,
        chair=chair.id,
        coordinator=coordinator.id,
        attendees=[p.id for p in attendees],
        case_ids=[c.id for c in cases],
        shares=shares,
        series_id=series_id,
    )
    await db.audit.record(
        "meeting created",
        user=by,
        username=None if by else "command line",
        client=client,
        detail=f"meeting {meeting.id} {name!r} at {starts}, {len(cases)} cases, {len(shares)} shares",
    )
    return meeting


async def record_outcome(
    db: Database,
    meeting: Meeting,
    case_id: str,
    *,
    by: User,
    decisions: list[str],
    notes: str,
    client: str,
    allowed: Sequence[str] = DECISIONS,
) -> None:
    """Record the decisions (one or more, none chosen for the recorder) on an agenda case, and audit it."""
    if not may_record(by, meeting):
        raise NotAllowed("Only the meeting's coordinator or chair records outcomes.")
    if await db.meetings.closed(meeting.id):
        raise WrongState("This meeting is closed: its outcomes can no longer be changed.")
    chosen = list(dict.fromkeys(d.strip() for d in decisions if d.strip()))
    if not chosen or any(d not in allowed for d in chosen):
        raise Invalid(f"Choose one or more decisions: {', '.join(allowed)}.")
    notes = notes.strip()
    if len(notes) > MAX_NOTES:
        raise Invalid(f"Notes are at most {MAX_NOTES:,} characters.")
    if not await db.meetings.record_outcome(meeting.id, case_id, decisions=chosen, notes=notes, by=by.id):
        raise WrongState("This outcome has been signed off and can no longer be changed.")
    await db.audit.record(
        "meeting outcome recorded",
        user=by,
        client=client,
        case_id=case_id,
        detail=f"meeting {meeting.id}: {', '.join(chosen)}",
    )


async def close_meeting(db: Database, meeting: Meeting, *, by: User, client: str) -> None:
    """Close the meeting: its outcomes are final and outside participants lose its cases."""
    if not may_record(by, meeting):
        raise NotAllowed("Only the meeting's chair or coordinator closes it.")
    if not await db.meetings.close(meeting.id, by=by.id):
        raise WrongState("This meeting is already closed.")
    await db.audit.record("meeting closed", user=by, client=client, detail=f"meeting {meeting.id}")


async def present_case(db: Database, meeting: Meeting, case_id: str | None, *, by: User, client: str) -> bool:
    """Put an agenda case on screen for everyone (None: no case, the clock stops), and audit it.

    False when that case is already on screen (two clicks on "Next" move the meeting once).
    The caller has checked that the case is on the agenda and serialises steps of one meeting.
    """
    if not may_step(by, meeting):
        raise NotAllowed("Only the meeting's chair or coordinator moves the meeting to another case.")
    if await db.meetings.closed(meeting.id):
        raise WrongState("This meeting is closed.")
    if not await db.meetings.present(meeting.id, case_id, by=by.id):
        return False
    await db.audit.record(
        "meeting case presented",
        user=by,
        client=client,
        case_id=case_id,
        detail=f"meeting {meeting.id}" if case_id else f"meeting {meeting.id}: no case on screen",
    )
    return True


async def sign_off(db: Database, meeting: Meeting, case_id: str, *, by: User, client: str) -> None:
    """Sign off the outcome recorded for an agenda case, and audit it."""
    if not may_sign_off(by, meeting):
        raise NotAllowed("Only the meeting's chair signs outcomes off.")
    if await db.meetings.closed(meeting.id):
        raise WrongState("This meeting is closed: its outcomes can no longer be changed.")
    if not await db.meetings.sign_off(meeting.id, case_id, by=by.id):
        raise WrongState("There is no outcome to sign off, or it has already been signed off.")
    await db.audit.record(
        "meeting outcome signed off", user=by, client=client, case_id=case_id, detail=f"meeting {meeting.id}"
    )
