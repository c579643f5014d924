"""The worklist: one page of the cases a person may see, in ONE query, with what they may do.

The visibility and rights are ``collab.domain.case_access`` written as SQL, so that a page of
50 costs one query (plus one for the counts) however many cases there are, rather than one
per case. tests/test_cases_web.py checks that both agree, case by case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collab.domain import OPINION_SOURCE, PRIORITIES, STATUSES, User
from collab.store.analyses import OPEN_FLAG_OF_CASE, TOP_TOOL_SCORE_OF_CASE
from collab.store.catalog import PRIORITY_ORDER

if TYPE_CHECKING:
    from collab.store.database import Database

SORTS = ("priority", "accession", "created", "status", "flags", "score")
STATUS_ORDER = "CASE status " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATUSES)) + " END"
_URGENCY = PRIORITY_ORDER.replace("priority", "v.priority")
_ORDER = {
    "priority": f"{_URGENCY}, v.created, v.accession",
    "accession": "v.accession",
    "created": "v.created DESC, v.seq DESC",  # seconds tie: the later made first
    "status": f"{STATUS_ORDER.replace('status', 'v.status')}, {_URGENCY}, v.created",
    # Cases with a flag still to review first, then as by priority.
    "flags": f"CASE WHEN EXISTS ({OPEN_FLAG_OF_CASE}) THEN 0 ELSE 1 END, {_URGENCY}, v.created, v.accession",
    # The highest score an outside tool gave a case's slides first; cases without one last.
    "score": f"CASE WHEN ({TOP_TOOL_SCORE_OF_CASE}) IS NULL THEN 1 ELSE 0 END,"
    f" ({TOP_TOOL_SCORE_OF_CASE}) DESC, {_URGENCY}, v.created, v.accession",
}
# Shares that open a case to this person (case_access and _share_covers): made to them, or to
# their organisation, unless made for a second opinion and they are not a pathologist.
_VISIBLE = """
WITH covering AS (
    SELECT case_id, max(contributing) AS contributing FROM case_shares
    WHERE revoked IS NULL AND (user_id = :user_id OR (org_id = :org_id AND (
        source IS NULL OR substr(source, 1, length(:opinion)) != :opinion OR :role = 'pathologist')))
    GROUP BY case_id
),
visible AS (
    SELECT cases.*, cases.rowid AS seq, CASE WHEN :role = 'student' THEN 0
        WHEN :own = 1 AND cases.org_id = :org_id AND :role IN ('admin', 'pathologist', 'trainee') THEN 1
        ELSE coalesce(covering.contributing, 0) END AS contribute
    FROM cases LEFT JOIN covering ON covering.case_id = cases.id
    WHERE (:own = 1 AND cases.org_id = :org_id) OR covering.case_id IS NOT NULL
)
"""


@dataclass(frozen=True)
class WorklistQuery:
    """What the worklist asks for; ``identified`` says whether identifiers may be searched."""

    identified: bool
    q: str = ""
    status: str | None = None
    priority: str | None = None
    assignee: str | None = None  # "me", "none" or a display name
    flagged: bool = False  # only cases with an analysis flag still to review
    sort: str = "priority"
    page: int = 1
    per_page: int = 50


def _params(viewer: User) -> dict[str, Any]:
    return {
        "user_id": viewer.id,
        "org_id": viewer.org_id,
        "role": viewer.role,
        "own": viewer.role != "student",  # students see only what is shared with them
        "opinion": OPINION_SOURCE,
    }


async def _rows(db: Database, sql: str, params: dict[str, Any]) -> list[Any]:
    # Named parameters: Database.all takes a sequence.
    async with db.conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(query: WorklistQuery, params: dict[str, Any]) -> str:
    """The search condition. Identifiers (accession, name, NHS number) are searched only for
    those who may see them; anyone else finds a case by the id its title shows, so that a
    search can never tell them that a patient of that name or number exists."""
    q = query.q.strip()
    if not q:
        return ""
    if not query.identified:
        params["id_prefix"] = _like(q.lower().removeprefix("case").strip()) + "%"
        return " AND v.id LIKE :id_prefix ESCAPE '\\'"
    params["contains"] = "%" + _like(q) + "%"
    condition = "v.accession LIKE :contains ESCAPE '\\' OR v.patient_name LIKE :contains ESCAPE '\\'"
    digits = q.replace(" ", "").replace("-", "")
    if digits.isdigit():
        params["nhs_prefix"] = digits + "%"
        condition += " OR replace(replace(v.nhs_number, ' ', ''), '-', '') LIKE :nhs_prefix"
    return f" AND ({condition})"


async def worklist_page(db: Database, viewer: User, query: WorklistQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of the cases ``viewer`` may see, and how many match in all."""
    params = _params(viewer)
    where = _search(query, params)
    if query.status:
        params["status"] = query.status
        where += " AND v.status = :status"
    if query.priority:
        params["priority"] = query.priority
        where += " AND v.priority = :priority"
    if query.assignee == "me":
        where += " AND v.assigned_to = :user_id"
    elif query.assignee == "none":
        where += " AND v.assigned_to IS NULL"
    elif query.assignee:
        params["assignee"] = query.assignee
        where += " AND assignee.display_name = :assignee"
    if query.flagged:
        where += f" AND EXISTS ({OPEN_FLAG_OF_CASE})"
    sort = query.sort if query.sort in SORTS else "priority"
    if sort == "accession" and not query.identified:
        sort = "priority"  # the order of accession numbers is theirs alone
    params["limit"] = query.per_page
    params["offset"] = (query.page - 1) * query.per_page
    sql = (
        _VISIBLE + "SELECT v.*, organisations.name AS org_name, assignee.display_name AS assignee_name,"
        " (SELECT group_concat(id) FROM (SELECT id FROM slides WHERE case_id = v.id"
        " ORDER BY added, rowid) AS ordered) AS slide_ids, count(*) OVER () AS matched"
        " FROM visible AS v JOIN organisations ON organisations.id = v.org_id"
        " LEFT JOIN users AS assignee ON assignee.id = v.assigned_to"
        f" WHERE 1 = 1{where} ORDER BY {_ORDER[sort]} LIMIT :limit OFFSET :offset"
    )
    rows = await _rows(db, sql, params)
    if not rows and query.page > 1:
        # Past the last page (the list shrank): say how many there are, with no rows.
        params["offset"] = 0
        first = await _rows(db, sql, params)
        return [], int(first[0]["matched"]) if first else 0
    return [dict(r) for r in rows], int(rows[0]["matched"]) if rows else 0


async def worklist_counts(db: Database, viewer: User) -> dict[str, Any]:
    """How many cases the viewer may see, by priority and by status (the filters' menus)."""
    rows = await _rows(
        db,
        _VISIBLE + "SELECT priority, status, count(*) AS n FROM visible GROUP BY priority, status",
        _params(viewer),
    )
    by_priority = dict.fromkeys(PRIORITIES, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    for r in rows:
        by_priority[r["priority"]] = by_priority.get(r["priority"], 0) + r["n"]
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
    return {"total": sum(r["n"] for r in rows), "by_priority": by_priority, "by_status": by_status}
