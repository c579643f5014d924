"""The one place that decides whether a request may touch a case or a slide."""

from __future__ import annotations

import time

from starlette.requests import Request

from collab.domain import Access, Case, SlideRecord, case_access
from collab.store import Database
from collab.web.auth import current_user

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
            access = Access(contribute=access.contribute, identified=False)
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

    def forget(self, case_id: str) -> None:
        """Drop remembered decisions about a case (after a share changes)."""
        for key in [k for k in self._decisions if k[1] == case_id]:
            del self._decisions[key]
