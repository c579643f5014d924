"""The one place that decides whether a request may touch a case or a slide."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from collab.domain import Access, Case, SlideRecord, case_access
from collab.store import Database
from collab.web.auth import current_user
from collab.web.errors import error

ACCESS_ENDED = (
    "Your access to this case has ended: the second opinion, meeting or share that opened it"
    " is over. Ask the case's pathologists if you need it again."
)

# Decisions are remembered this long, so that tiles do not each cost database
# queries; a share revoked from this process takes effect at once (see forget).
ACCESS_CACHE_S = 5.0


def anonymised(request: Request) -> bool:
    """Whether the request asks for an anonymised view (``?view=anonymised``)."""
    return request.query_params.get("view") == "anonymised"


class AccessControl:
    """Case and slide access for the signed-in user, from the catalogue and the policy."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._decisions: dict[tuple[int, str], tuple[float, Case | None, Access | None]] = {}
        self._slides: dict[str, SlideRecord | None] = {}

    async def case(self, request: Request, case_id: str) -> tuple[Case, Access] | None:
        """The case and what the user may do with it; None if it does not exist for them."""
        user = current_user(request)
        now = time.monotonic()
        hit = self._decisions.get((user.id, case_id))
        if hit and hit[0] > now:
            case, access = hit[1], hit[2]
        else:
            case = await self.db.catalog.case(case_id)
            access = case_access(user, case, await self.db.catalog.shares(case_id)) if case else None
            if len(self._decisions) > 50_000:
                self._decisions.clear()
            self._decisions[(user.id, case_id)] = (now + ACCESS_CACHE_S, case, access)
        if case is None or access is None:
            return None
        if anonymised(request):
            # Anyone may ask for an anonymised view (teaching, a screen shared in a meeting).
            access = Access(contribute=access.contribute, identified=False, discuss=access.discuss)
        return case, access

    async def slide(self, request: Request, slide_id: str) -> tuple[SlideRecord, Case, Access] | None:
        """The slide, its case and the user's access to it; None if it does not exist for them."""
        if slide_id not in self._slides:
            if len(self._slides) > 50_000:
                self._slides.clear()
            self._slides[slide_id] = await self.db.catalog.slide(slide_id)
        record = self._slides[slide_id]
        if record is None:
            del self._slides[slide_id]  # it may be registered later
            return None
        found = await self.case(request, record.case_id)
        return (record, *found) if found else None

    async def ended(self, request: Request, case_id: str) -> bool:
        """Whether the user once had this case through a share that has since ended.

        They know the case exists, so they are told that their access ended (403) rather
        than that there is no such case (404, for everyone else)."""
        case = await self.db.catalog.case(case_id)
        if case is None:
            return False
        # The policy itself decides, as if the ended shares still held.
        ended = await self.db.catalog.ended_shares(case_id)
        return bool(ended) and case_access(current_user(request), case, ended) is not None

    async def refusal(self, request: Request, case_id: str, *, api: bool = False) -> Response:
        """The answer to someone who may not see the case: 403 if their access ended, else 404."""
        if await self.ended(request, case_id):
            return error(403, ACCESS_ENDED, request, api=api)
        return error(404, "No such case.", request, api=api)

    async def slide_refusal(self, request: Request, slide_id: str) -> Response:
        """As ``refusal``, for a slide of the case."""
        record = self._slides.get(slide_id)
        if record is not None and await self.ended(request, record.case_id):
            return error(403, ACCESS_ENDED, request)
        return error(404, "No such slide.", request)

    def forget(self, case_id: str) -> None:
        """Drop remembered decisions about a case (after a share changes)."""
        for key in [k for k in self._decisions if k[1] == case_id]:
            del self._decisions[key]
