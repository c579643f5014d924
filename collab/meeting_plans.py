"""Planning MDT meetings: making them (weekly series too), changing, cancelling and reopening
them, building the agenda and inviting attendees. One set of rules for the web, the API and
the command line; every act is audited.

Times: a meeting's ``starts`` is stored in UTC (to the minute, as the rest of collab keeps
time); people give and read it in UK local time (Europe/London), which these functions convert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from collab.domain import Case, Meeting, Organisation, User, case_access
from collab.meetings import Invalid, NotAllowed, WrongState, contributes, create_meeting
from collab.store import Database
from collab.store.database import new_id
from collab.store.meeting_plans import MeetingPlans, PlannedItem

UK = ZoneInfo("Europe/London")
MAX_WEEKS = 52
MAX_QUESTION = 2_000
MAX_MINUTES = 120
MAX_AGENDA = 200


def utc_from_uk(local: str) -> str:
    """``YYYY-MM-DDTHH:MM`` in UK local time as the stored UTC minute, or Invalid."""
    try:
        parsed = datetime.fromisoformat(local.strip())
    except ValueError:
        raise Invalid(f"{local!r} is not a date and time such as 2026-12-01T13:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UK)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def uk_from_utc(stored: str) -> str:
    """A stored UTC minute as UK local time, ``YYYY-MM-DD HH:MM``."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(UK).strftime("%Y-%m-%d %H:%M")


def may_plan(user: User) -> bool:
    """Who makes meetings: administrators (MDT coordinators), pathologists and clinicians."""
    return user.role in ("admin", "pathologist", "clinician")


def may_edit(user: User, meeting: Meeting) -> bool:
    """The chair and the coordinator change a meeting."""
    return user.id in (meeting.chair, meeting.coordinator)


def meeting_shares(cases: list[Case], people: list[User]) -> set[tuple[str, int, bool]]:
    """The shares that open agenda cases to participants who would not see them otherwise."""
    return {
        (case.id, person.id, contributes(person))
        for case in cases
        for person in people
        if person.org_id != case.org_id or person.role == "student"
    }


async def create_series(
    db: Database,
    name: str,
    *,
    org: Organisation,
    starts_uk: str,
    weeks: int,
    chair: User,
    coordinator: User,
    attendees: list[User],
    by: User | None,
    client: str,
) -> list[Meeting]:
    """One meeting, or ``weeks`` weekly meetings at the same UK local time linked by a series id."""
    if by is not None and not may_plan(by):
        raise NotAllowed("Only administrators, pathologists and clinicians arrange meetings.")
    if by is not None and by.org_id != org.id:
        raise NotAllowed("You arrange meetings of your own organisation only.")
    if not 1 <= weeks <= MAX_WEEKS:
        raise Invalid(f"A weekly series is 1 to {MAX_WEEKS} meetings.")
    first = utc_from_uk(starts_uk)  # validates before anything is stored
    local = datetime.fromisoformat(first).replace(tzinfo=UTC).astimezone(UK).replace(tzinfo=None)
    series_id = new_id() if weeks > 1 else None
    made = []
    for week in range(weeks):
        # Each week at the same wall-clock time, across the clocks changing.
        starts = (local + timedelta(weeks=week)).replace(tzinfo=UK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        made.append(
            await create_meeting(
                db,
                name,
                org=org,
                starts=starts,
                chair=chair,
                coordinator=coordinator,
                attendees=attendees,
                cases=[],
                by=by,
                client=client,
                series_id=series_id,
            )
        )
    return made


async def _editable(db: Database, meeting: Meeting, by: User) -> None:
    if not may_edit(by, meeting):
        raise NotAllowed("Only the meeting's chair or coordinator changes it.")
    if meeting.status == "cancelled":
        raise WrongState("This meeting is cancelled: reopen it first.")
    if await db.meetings.closed(meeting.id):
        raise WrongState("This meeting is closed: reopen it first.")


async def update_meeting(
    db: Database,
    meeting: Meeting,
    *,
    name: str,
    starts_uk: str,
    chair: User,
    coordinator: User,
    by: User,
    client: str,
) -> None:
    """Change a meeting's name, time, chair or coordinator."""
    await _editable(db, meeting, by)
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("A meeting needs a name of at most 200 characters.")
    starts = utc_from_uk(starts_uk)
    await MeetingPlans(db).update(
        meeting.id, name=name, starts=starts, chair=chair.id, coordinator=coordinator.id
    )
    await resync_shares(db, meeting.id)
    await db.audit.record(
        "meeting changed", user=by, client=client, detail=f"meeting {meeting.id} {name!r} at {starts}"
    )


async def set_status(db: Database, meeting: Meeting, status: str, *, by: User, client: str) -> None:
    """``cancelled`` (its shares end) or ``scheduled`` (reopens a cancelled or closed meeting)."""
    if not may_edit(by, meeting):
        raise NotAllowed("Only the meeting's chair or coordinator cancels or reopens it.")
    if status not in ("cancelled", "scheduled"):
        raise Invalid("The status is 'cancelled' or 'scheduled'.")
    closed = await db.meetings.closed(meeting.id)
    if status == "cancelled" and (meeting.status == "cancelled" or closed):
        raise WrongState("This meeting is already cancelled or closed.")
    if status == "scheduled" and meeting.status == "scheduled" and not closed:
        raise WrongState("This meeting is already open.")
    await MeetingPlans(db).set_status(meeting.id, status)
    await resync_shares(db, meeting.id)
    event = "meeting cancelled" if status == "cancelled" else "meeting reopened"
    await db.audit.record(event, user=by, client=client, detail=f"meeting {meeting.id}")


async def resync_shares(db: Database, meeting_id: str) -> None:
    """Open the agenda cases to exactly the participants who need it (none once cancelled or closed)."""
    meeting = await db.meetings.get(meeting_id)
    assert meeting is not None
    wanted: set[tuple[str, int, bool]] = set()
    if meeting.status == "scheduled" and not await db.meetings.closed(meeting_id):
        cases = [
            c for item in await db.meetings.agenda(meeting_id) if (c := await db.catalog.case(item.case_id))
        ]
        people = [
            p
            for user_id, _ in await db.meetings.attendees(meeting_id)
            if (p := await db.people.user(user_id))
        ]
        wanted = meeting_shares(cases, people)
    await MeetingPlans(db).sync_shares(meeting_id, wanted)


async def may_put_on_agenda(db: Database, user: User, case: Case) -> bool:
    """One puts on an agenda only a case one may see oneself (and not through this meeting alone)."""
    shares = [s for s in await db.catalog.shares(case.id) if not (s.source or "").startswith("meeting:")]
    return case_access(user, case, shares) is not None


async def replace_agenda(
    db: Database, meeting: Meeting, items: list[PlannedItem], *, by: User, client: str
) -> None:
    """Make the agenda ``items`` in that order: every add, remove, change and reordering goes here."""
    await _editable(db, meeting, by)
    if len(items) > MAX_AGENDA:
        raise Invalid(f"An agenda holds at most {MAX_AGENDA} cases.")
    if len({i.case_id for i in items}) != len(items):
        raise Invalid("A case is on the agenda only once.")
    before = {i.case_id: i for i in await db.meetings.agenda(meeting.id)}
    for item in items:
        if not 1 <= item.planned_minutes <= MAX_MINUTES:
            raise Invalid(f"Planned minutes are 1 to {MAX_MINUTES}.")
        if len(item.question) > MAX_QUESTION:
            raise Invalid(f"The MDT question is at most {MAX_QUESTION:,} characters.")
        if item.case_id not in before:
            case = await db.catalog.case(item.case_id)
            if case is None or not await may_put_on_agenda(db, by, case):
                raise Invalid("No such case, or not one you may see.")
        if item.presenter is not None:
            presenter = await db.people.user(item.presenter)
            if presenter is None or presenter.role not in ("pathologist", "trainee"):
                raise Invalid("The presenting pathologist must be a pathologist or trainee.")
    kept = {i.case_id for i in items}
    for case_id, old in before.items():
        if case_id not in kept and old.decisions:
            raise WrongState("A case with a recorded outcome stays on the agenda.")
    await MeetingPlans(db).write_agenda(meeting.id, items)
    # The presenting pathologist takes part, so that they can open the case.
    for item in items:
        if item.presenter is not None:
            await MeetingPlans(db).add_attendee(meeting.id, item.presenter)
    await resync_shares(db, meeting.id)
    added = kept - before.keys()
    removed = before.keys() - kept
    await db.audit.record(
        "meeting agenda changed",
        user=by,
        client=client,
        detail=f"meeting {meeting.id}: {len(items)} cases, {len(added)} added, {len(removed)} removed",
    )


async def add_attendee(db: Database, meeting: Meeting, person: User, *, by: User, client: str) -> None:
    """Invite a person (of any organisation); the agenda cases open to them."""
    await _editable(db, meeting, by)
    if not await MeetingPlans(db).add_attendee(meeting.id, person.id):
        raise WrongState(f"{person.display_name} already takes part.")
    await resync_shares(db, meeting.id)
    await db.audit.record(
        "meeting attendee added", user=by, client=client, detail=f"meeting {meeting.id}: {person.username}"
    )


async def remove_attendee(db: Database, meeting: Meeting, person: User, *, by: User, client: str) -> None:
    """Uninvite a person; the shares this meeting made for them end."""
    await _editable(db, meeting, by)
    if person.id in (meeting.chair, meeting.coordinator):
        raise Invalid("The chair and the coordinator take part: change them instead.")
    if not await MeetingPlans(db).remove_attendee(meeting.id, person.id):
        raise WrongState(f"{person.display_name} does not take part.")
    await resync_shares(db, meeting.id)
    await db.audit.record(
        "meeting attendee removed", user=by, client=client, detail=f"meeting {meeting.id}: {person.username}"
    )
