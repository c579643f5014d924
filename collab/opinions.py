"""Second opinions: who may ask whom, the steps a request goes through, and their audit entries.

A request is asked of a pathologist, or of an organisation (any of its pathologists
answers). It goes requested -> accepted -> answered, or ends declined or withdrawn
before it is answered. While it is open the case is shared with whoever it was asked
of; the store ends that share when the request closes.
"""

from __future__ import annotations

from collab.domain import Case, OpinionRequest, Organisation, User, may_share
from collab.store import Database

MAX_QUESTION = 4000
MAX_OPINION = 20_000

# action -> (the states it starts from, the state it leads to)
STEPS = {
    "accept": (("requested",), "accepted"),
    "decline": (("requested", "accepted"), "declined"),
    "answer": (("accepted",), "answered"),
    "withdraw": (("requested", "accepted"), "withdrawn"),
}
REQUESTEE_STEPS = ("accept", "decline", "answer")
AUDIT_EVENTS = {
    "accept": "opinion accepted",
    "decline": "opinion declined",
    "answer": "opinion answered",
    "withdraw": "opinion withdrawn",
}


class OpinionRefused(Exception):
    """A step the rules refuse; the message is fit to show the person who tried it."""


class NotAllowed(OpinionRefused):
    """This person may not take that step."""


class WrongState(OpinionRefused):
    """The request is not (or no longer) in a state that allows that step."""


class Invalid(OpinionRefused):
    """What was sent is missing something or is wrong."""


def is_requestee(user: User, request: OpinionRequest) -> bool:
    """The person asked, or, for a request to an organisation, any of its pathologists."""
    if request.to_user is not None:
        return request.to_user == user.id
    return request.to_org == user.org_id and user.role == "pathologist"


def may_see(user: User, case: Case, request: OpinionRequest) -> bool:
    """The owning organisation sees every request on its case; others only their own.

    Two specialists asked about one case do not see each other's requests or answers,
    so that each opinion is given independently.
    """
    own = user.org_id == case.org_id and user.role != "student"
    return own or request.requested_by == user.id or is_requestee(user, request)


def actions(user: User, request: OpinionRequest) -> list[str]:
    """The steps ``user`` may take on ``request`` now."""
    return [action for action in STEPS if _refusal(user, request, action) is None]


def check_step(user: User, request: OpinionRequest, action: str, opinion: str | None = None) -> str:
    """The state ``action`` leads to, or OpinionRefused saying why it may not be taken."""
    refusal = _refusal(user, request, action)
    if refusal is not None:
        raise refusal
    if action == "answer":
        if not (opinion or "").strip():
            raise Invalid("Write your opinion before sending the answer.")
        if len(opinion or "") > MAX_OPINION:
            raise Invalid(f"An opinion is at most {MAX_OPINION:,} characters.")
    return STEPS[action][1]


def _refusal(user: User, request: OpinionRequest, action: str) -> OpinionRefused | None:
    starts, done = STEPS[action]
    if action in REQUESTEE_STEPS and not is_requestee(user, request):
        whom = (
            "the pathologist it was asked of" if request.to_user else "pathologists of the organisation asked"
        )
        return NotAllowed(f"This request was not asked of you: only {whom} can {action} it.")
    if action == "withdraw" and request.requested_by != user.id:
        return NotAllowed("Only the pathologist who asked for this opinion can withdraw it.")
    if request.state in starts:
        return None
    if not request.open:
        return WrongState(f"This request has been {request.state} and is closed: it can no longer be {done}.")
    if action == "accept":
        return WrongState("This request has already been accepted.")
    return WrongState("Accept the request before answering it.")


def check_request(
    user: User, case: Case, *, person: User | None, org: Organisation | None, question: str
) -> str:
    """The question, tidied, if ``user`` may ask ``person`` or ``org`` about ``case``."""
    if not may_share(user, case):
        raise NotAllowed(
            "Only pathologists and administrators of the owning organisation ask for a second opinion."
        )
    if person is not None:
        if person.id == user.id:
            raise Invalid("You cannot ask yourself for a second opinion.")
        if person.role != "pathologist":
            raise Invalid(
                f"{person.display_name} is not a pathologist: a second opinion is asked of a pathologist."
            )
    elif org is not None:
        if org.id == case.org_id:
            raise Invalid(
                "Ask a colleague in your own organisation by username;"
                " a request to an organisation is for another organisation."
            )
    else:
        raise Invalid("Say whom to ask: a pathologist's username or an organisation's name.")
    question = question.strip()
    if not question:
        raise Invalid("Write the question you would like answered.")
    if len(question) > MAX_QUESTION:
        raise Invalid(f"A question is at most {MAX_QUESTION:,} characters.")
    return question


async def request_opinion(
    db: Database,
    case: Case,
    *,
    by: User,
    person: User | None,
    org: Organisation | None,
    question: str,
    urgent: bool,
    client: str,
) -> OpinionRequest:
    """Ask ``person`` or ``org`` about ``case``: the request, its share, and the audit entry."""
    question = check_request(by, case, person=person, org=org, question=question)
    to_user = person.id if person else None
    to_org = org.id if org and not person else None
    name = person.display_name if person else org.name if org else ""
    if await db.opinions.open_between(case.id, to_user, to_org):
        raise Invalid(f"{name} has already been asked about this case, and that request is still open.")
    target = f"user {person.username}" if person else f"organisation {name}"
    made = await db.opinions.add(
        case.id, requested_by=by.id, to_user=to_user, to_org=to_org, question=question, urgent=urgent
    )
    await db.audit.record(
        "opinion requested",
        user=by,
        client=client,
        case_id=case.id,
        detail=f"request {made.id} to {target}{', urgent' if urgent else ''}; case shared until it closes",
    )
    return made


async def take_step(
    db: Database, request: OpinionRequest, action: str, *, by: User, opinion: str | None, client: str
) -> OpinionRequest:
    """Accept, decline, answer or withdraw ``request`` as ``by``, and audit it."""
    to_state = check_step(by, request, action, opinion)
    moved = await db.opinions.move(
        request.id,
        from_state=request.state,
        to_state=to_state,
        by=by.id,
        opinion=opinion.strip() if action == "answer" and opinion else None,
    )
    if moved is None:  # someone else took a step on it in the meantime
        current = await db.opinions.get(request.id)
        state = current.state if current else "closed"
        raise WrongState(f"This request has just been {state} by someone else. Reload the page.")
    ended = "" if moved.open else "; access to the case ended"
    await db.audit.record(
        AUDIT_EVENTS[action],
        user=by,
        client=client,
        case_id=request.case_id,
        detail=f"request {request.id}{ended}",
    )
    return moved
