"""Teaching sessions: who may run one, the join code, students' display names, and what of a
case a student may ever receive.

An educator (a pathologist or an administrator) builds a session from cases they can see.
Students join with a short code and a display name; they receive the slides' pixels under
per-session aliases, and copies of the cases' annotations (shape, label, colour only). No
accession, patient detail, case or slide id, file path, label or macro image reaches them:
the server maps aliases to slides and never sends the mapping.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc, Map

from collab.domain import Case, User, case_access
from collab.store import Database, StoreError
from collab.store.teaching import TeachingSession

# No 0/O, 1/I/L: a code read out in a lecture theatre is typed right the first time.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
MAX_TITLE = 200
MAX_DISPLAY_NAME = 40
MAX_QUESTION = 500
MAX_CASES = 50
# The annotation fields a student's copy keeps: the shape and what it says, never who drew it.
COPIED_FIELDS = ("kind", "points", "label", "color")


class TeachingRefused(Exception):
    """A step the rules refuse; the message is fit to show the person who tried it."""


def may_teach(user: User) -> bool:
    """Pathologists and administrators run teaching sessions (of cases they can see)."""
    return user.role in ("pathologist", "admin")


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    """What a student typed, as a code: case and spaces or dashes do not matter."""
    return re.sub(r"[\s-]+", "", raw).upper()[:20]


def clean_display_name(raw: str) -> str:
    """A student's display name, trimmed and bounded; TeachingRefused if nothing usable is left."""
    name = "".join(ch for ch in unicodedata.normalize("NFC", raw) if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split())
    if not name:
        raise TeachingRefused("Enter the name to show the educator (your first name will do).")
    if len(name) > MAX_DISPLAY_NAME:
        raise TeachingRefused(f"A display name is at most {MAX_DISPLAY_NAME} characters.")
    return name


def clean_question(raw: str) -> str:
    question = " ".join(raw.split())
    if not question:
        raise TeachingRefused("Write the question to ask.")
    if len(question) > MAX_QUESTION:
        raise TeachingRefused(f"A question is at most {MAX_QUESTION} characters.")
    return question


CaseDocument = Callable[[str], Awaitable[Doc[Any]]]


async def create_session(
    db: Database,
    title: str,
    *,
    educator: User,
    cases: list[Case],
    case_document: CaseDocument,
    client: str,
) -> TeachingSession:
    """Check the rules, make the session with a free join code and its first document, audit it."""
    title = " ".join(title.split())
    if not title:
        raise TeachingRefused("Give the session a title.")
    if len(title) > MAX_TITLE:
        raise TeachingRefused(f"A title is at most {MAX_TITLE} characters.")
    if not may_teach(educator):
        raise TeachingRefused("Only pathologists and administrators run teaching sessions.")
    if not cases:
        raise TeachingRefused("Choose at least one case.")
    if len(cases) > MAX_CASES:
        raise TeachingRefused(f"A session holds at most {MAX_CASES} cases.")
    if len({c.id for c in cases}) != len(cases):
        raise TeachingRefused("A case is in the list twice.")
    slides: list[tuple[int, int, str, str, int, int]] = []
    for item, case in enumerate(cases, start=1):
        if case_access(educator, case, await db.catalog.shares(case.id)) is None:
            # The same words as for a case that does not exist: nothing leaks.
            raise TeachingRefused(f"No case {case.accession!r} that you can see.")
        records = await db.catalog.slides_of_case(case.id)
        if not records:
            raise TeachingRefused(f"Case {case.accession} has no slides to show.")
        slides += [(item, n, case.id, r.id, r.width, r.height) for n, r in enumerate(records, start=1)]
    for _ in range(20):
        code = new_code()
        if await db.teaching.code_in_use(code):
            continue
        # Aliases are made by the store; the document needs them, so it is written after.
        try:
            session = await db.teaching.add_session(title, educator.id, code, slides)
        except StoreError:  # a session opened with the same code at the same instant
            continue
        break
    else:
        raise TeachingRefused("No free join code: close some old sessions and try again.")
    aliases = {s.slide_id: s.alias for s in await db.teaching.slides(session.id)}
    state = seed_document(title, educator, [await case_document(c.id) for c in cases], aliases)
    await db.teaching.documents.append([(session.id, state)])
    await db.audit.record(
        "teaching session created",
        user=educator,
        client=client,
        detail=f"session {session.id}: {title!r}, cases {', '.join(c.accession for c in cases)}",
    )
    return session


def seed_document(title: str, educator: User, case_docs: list[Doc[Any]], aliases: dict[str, str]) -> bytes:
    """The session's first state: the cases' annotations on its slides (renamed to their aliases,
    shape, label and colour only, drawn by the educator as far as the room is concerned), and
    the server-written ``session`` and ``quiz`` maps."""
    doc: Doc[Any] = Doc()
    annotations = doc.get("annotations", type=Map)
    session = doc.get("session", type=Map)
    doc.get("quiz", type=Map)
    with doc.transaction():
        session["title"] = title
        session["educator"] = educator.id
        session["educatorName"] = educator.display_name
        session["pen"] = None
        session["penName"] = None
        n = 0
        for case_doc in case_docs:
            entries = case_doc.get("annotations", type=Map).to_py() or {}
            for entry in entries.values():
                if not isinstance(entry, dict) or entry.get("slide") not in aliases:
                    continue
                n += 1
                copied = {k: entry[k] for k in COPIED_FIELDS if k in entry}
                copied |= {
                    "slide": aliases[entry["slide"]],
                    "author": str(educator.id),
                    "authorName": educator.display_name,
                    "created": "",
                    "updated": "",
                }
                annotations[f"seed{n:05d}"] = Map(copied)
    return doc.get_update()
