"""The things collab keeps, and who may see them: plain records and rules, no storage or web code."""

from __future__ import annotations

from dataclasses import dataclass

PRIORITIES = ("urgent", "2ww", "routine")
# The workflow of a case, in order (collab.cases.change_status moves one step at a time).
STATUSES = ("new", "in review", "ready for MDT", "reported")
ROLES = ("admin", "pathologist", "trainee", "clinician", "student")
SPECIALTIES = ("oncology", "surgery", "radiology", "nursing/MDT coordination")


@dataclass(frozen=True)
class Organisation:
    """A hospital trust, optionally part of a pathology network."""

    id: int
    name: str
    network: str | None


@dataclass(frozen=True)
class User:
    """A person who signs in; belongs to one organisation."""

    id: int
    username: str
    display_name: str
    org_id: int
    role: str
    specialty: str | None = None


@dataclass(frozen=True)
class Patient:
    """Identifiable data of a case: only for those allowed to see it."""

    name: str | None
    nhs_number: str | None
    date_of_birth: str | None


NO_PATIENT = Patient(None, None, None)


@dataclass(frozen=True)
class Case:
    """A patient case owned by one organisation."""

    id: str
    accession: str
    org_id: int
    priority: str
    status: str
    created: str
    patient: Patient = NO_PATIENT
    specimen: str | None = None
    clinical_details: str | None = None
    assigned_to: int | None = None


@dataclass(frozen=True)
class Share:
    """A case opened to a person or to another organisation."""

    id: int
    case_id: str
    user_id: int | None
    org_id: int | None
    contributing: bool
    source: str | None = None  # None: shared by hand; else what it lives for (see opinion_source)


OPINION_STATES = ("requested", "accepted", "answered", "declined", "withdrawn")
OPEN_OPINION_STATES = ("requested", "accepted")
OPINION_SOURCE = "opinion:"


def opinion_source(request_id: int) -> str:
    """The ``source`` of the share that a second-opinion request opens, and closes with it."""
    return f"{OPINION_SOURCE}{request_id}"


@dataclass(frozen=True)
class OpinionRequest:
    """A second opinion asked of a pathologist or of an organisation's pathologists, about one case."""

    id: int
    case_id: str
    requested_by: int
    to_user: int | None
    to_org: int | None
    question: str
    urgent: bool
    state: str
    created: str
    updated: str
    accepted_by: int | None = None
    answered_by: int | None = None
    opinion: str | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_OPINION_STATES


MEETING_SOURCE = "meeting:"
# The decisions an MDT outcome chooses from (several per case); it keeps the older ones
# (LEGACY_DECISIONS, which the outcomes table's CHECK allows) so that older outcomes still read.
DECISIONS = (
    "surgery",
    "chemotherapy",
    "radiotherapy",
    "endocrine therapy",
    "surveillance",
    "further imaging",
    "further pathology",
    "further investigation",
    "discuss at another MDT",
    "best supportive care",
    "oncology",
    "discharge",
    "other",
)
LEGACY_DECISIONS = (
    "surgery",
    "oncology",
    "radiotherapy",
    "surveillance",
    "further investigation",
    "discharge",
    "other",
)
MEETING_STATUSES = ("scheduled", "cancelled")


def meeting_source(meeting_id: str) -> str:
    """The ``source`` of a share that opens an agenda case to a meeting's participant."""
    return f"{MEETING_SOURCE}{meeting_id}"


@dataclass(frozen=True)
class Meeting:
    """An MDT meeting of one organisation, chaired by one person and run by a coordinator."""

    id: str
    name: str
    starts: str
    org_id: int
    chair: int
    coordinator: int
    created: str
    status: str = "scheduled"  # or "cancelled"; closed is a separate record (meeting_closures)
    series_id: str | None = None  # weekly meetings made together share it


@dataclass(frozen=True)
class AgendaItem:
    """A case on a meeting's agenda, and the outcome recorded for it, if any."""

    case_id: str
    position: int
    planned_minutes: int
    decision: str | None = None
    notes: str | None = None
    recorded_by: int | None = None
    recorded: str | None = None
    signed_off_by: int | None = None
    signed_off: str | None = None
    question: str = ""
    presenter: int | None = None
    decisions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Presentation:
    """One stretch of time an agenda case was on screen in the meeting room; no end while it is."""

    case_id: str
    started: str
    ended: str | None
    presented_by: int


@dataclass(frozen=True)
class SlideRecord:
    """A registered slide file; ``path`` never leaves the server."""

    id: str
    case_id: str
    path: str
    stain: str | None
    width: int
    height: int
    vendor: str | None
    added: str


@dataclass(frozen=True)
class Access:
    """What one person may do with one case."""

    contribute: bool  # change the shared document (annotations, discussion)
    identified: bool  # receive patient identifiers, label and macro images
    # Post to the case discussion (and change their own messages) without contributing
    # otherwise: everyone on the clinical team who sees the case, read-only or not, since an
    # oncologist or surgeon at an MDT takes part in the discussion. Students never do.
    discuss: bool = False


def case_access(user: User, case: Case, shares: list[Share]) -> Access | None:
    """What ``user`` may do with ``case``; None means the case does not exist for them.

    Members of the owning organisation see its cases: pathologists, trainees and
    admins contribute, clinicians read. A share opens a case to a person or an
    organisation, read-only or contributing; a share made for a second opinion asked of
    an organisation opens the case to that organisation's pathologists only. Students
    see only what is shared with them, and never patient identifiers, labels or macro images.
    Everyone but students may post to the case's discussion.
    """
    own = user.org_id == case.org_id and user.role != "student"
    contribute = own and user.role in ("admin", "pathologist", "trainee")
    shared = [s for s in shares if _share_covers(s, user)]
    if not own and not shared:
        return None
    contribute = contribute or any(s.contributing for s in shared)
    if user.role == "student":
        contribute = False
    clinical = user.role != "student"
    return Access(contribute=contribute, identified=clinical, discuss=clinical)


def _share_covers(share: Share, user: User) -> bool:
    if share.user_id is not None:
        return share.user_id == user.id
    if share.org_id is None or share.org_id != user.org_id:
        return False
    # A second opinion asked of an organisation is for its pathologists, who alone may answer
    # it; its clinicians, trainees and students have no need to see the patient.
    return not (share.source or "").startswith(OPINION_SOURCE) or user.role == "pathologist"


def may_find(viewer: User, viewer_org: Organisation, other: User, other_org: Organisation) -> bool:
    """Whether ``viewer`` may look ``other`` up by username, and so learn their name and role.

    One finds the people of one's own organisation and of its pathology network. Pathologists
    and admins, who ask for second opinions, also find pathologists anywhere: any pathologist
    may be asked. Everyone else is answered as a username that does not exist.
    """
    if other.org_id == viewer.org_id:
        return True
    if viewer_org.network is not None and viewer_org.network == other_org.network:
        return True
    return other.role == "pathologist" and viewer.role in ("admin", "pathologist")


def case_title(case: Case, access: Access) -> str:
    """How a case is named on screen: accession numbers lead back to the patient's record."""
    return case.accession if access.identified else f"Case {case.id[:6]}"


def may_read_audit(user: User) -> bool:
    """Only administrators read the audit log."""
    return user.role == "admin"


def may_share(user: User, case: Case) -> bool:
    """Pathologists and admins of the owning organisation share its cases."""
    return may_moderate(user, case)


def may_manage_cases(user: User, org_id: int) -> bool:
    """Pathologists and admins of an organisation create its cases and edit them, their status
    and their patient details (there is no coordinator role: coordinators are clinicians)."""
    return user.org_id == org_id and user.role in ("admin", "pathologist")


def status_steps(status: str) -> tuple[str, ...]:
    """The statuses a case may move to from ``status``: the next step, or back one step to
    correct a mistake; a reported case is signed off and stays so."""
    if status not in STATUSES or status == "reported":
        return ()
    at = STATUSES.index(status)
    return tuple(STATUSES[i] for i in (at + 1, at - 1) if 0 <= i < len(STATUSES))


def may_moderate(user: User, case: Case) -> bool:
    """Pathologists and admins of the owning organisation may change anyone's annotations."""
    return user.org_id == case.org_id and user.role in ("admin", "pathologist")
