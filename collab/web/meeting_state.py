"""The state of a meeting room that every participant's page shows alike, and sending it to them.

It names cases only by id: what each person may know of a case (its title, the patient) is
in their own room page, decided when the page is made. Outcomes are in it because every
participant sees them on the meeting page too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette

from collab.domain import AgendaItem, Meeting
from collab.meeting_channels import MeetingChannels
from collab.meetings import seconds_spent
from collab.store import Database


async def room_state(db: Database, meeting: Meeting) -> dict[str, Any]:
    """Which case is on screen and since when, time spent on each case, outcomes, attendance."""
    names: dict[int, str | None] = {}

    async def name(user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in names:
            found = await db.people.user(user_id)
            names[user_id] = found.display_name if found else None
        return names[user_id]

    presentations = await db.meetings.presentations(meeting.id)
    now = datetime.now(UTC)
    spent = seconds_spent(presentations, now)
    current = presentations[-1] if presentations and presentations[-1].ended is None else None
    agenda = []
    for item in await db.meetings.agenda(meeting.id):
        agenda.append(
            {
                "case_id": item.case_id,
                "position": item.position,
                "planned_minutes": item.planned_minutes,
                # Up to the moment this state was made; pages count on from there.
                "seconds_spent": spent.get(item.case_id, 0),
                "presented": item.case_id in spent,
                "outcome": await outcome_view(item, name),
            }
        )
    # "Next" goes on from the case last on screen, even after "Pause" (no case on screen):
    # pages that counted from the current case alone started again at case 1.
    order = [item["case_id"] for item in agenda]
    last = presentations[-1].case_id if presentations else None
    index = order.index(last) if last in order else -1
    return {
        "closed": await db.meetings.closed(meeting.id),
        "last": last,
        "next": order[index + 1] if index + 1 < len(order) else None,
        "current": current.case_id if current else None,
        "current_since": current.started if current else None,
        "agenda": agenda,
        "attendees": [
            {"id": user_id, "name": await name(user_id), "attended": attended}
            for user_id, attended in await db.meetings.attendees(meeting.id)
        ],
    }


async def outcome_view(
    item: AgendaItem, name: Callable[[int | None], Awaitable[str | None]]
) -> dict[str, Any] | None:
    if item.decision is None:
        return None
    return {
        # One line for lists and older pages; "decisions" has each one.
        "decision": ", ".join(item.decisions),
        "decisions": list(item.decisions),
        "notes": item.notes or "",
        "recorded_by": await name(item.recorded_by),
        "recorded": item.recorded,
        "signed_off_by": await name(item.signed_off_by),
        "signed_off": item.signed_off,
    }


async def publish(app: Starlette, meeting: Meeting) -> None:
    """Send the meeting's new state to every open room page of it (if any is open)."""
    channels: MeetingChannels = app.state.meeting_channels
    if not channels.listening(meeting.id):
        return
    async with channels.lock(meeting.id):
        channels.publish(meeting.id, await room_state(app.state.db, meeting))
