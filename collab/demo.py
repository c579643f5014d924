"""``collab demo``: seed organisations, people, cases and generated slides into an empty data dir."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pycrdt import Doc

from collab.analysis.jobs import queue_for_new_slide
from collab.config import Settings
from collab.domain import Patient
from collab.meeting_plans import UK, utc_from_uk
from collab.meetings import create_meeting
from collab.security import hash_password
from collab.sharing import share_case
from collab.slides.demo import generate_demo_slide
from collab.store import Database
from collab.teaching import create_session

# Demo accounts share one password; printed at start so that a first-time user can sign in.
DEMO_PASSWORD = "collab-demo-2026"
ORGANISATIONS = (
    ("Northern Teaching Hospitals NHS Trust", "North Pathology Network"),
    ("Southern Coast NHS Trust", "South Pathology Network"),
)
# (username, display name, organisation index, role, specialty)
PEOPLE = (
    ("admin", "Sam Admin", 0, "admin", None),
    ("north.path", "Dr Nadia Okafor", 0, "pathologist", None),
    ("north.onc", "Dr Tom Reid", 0, "clinician", "oncology"),
    ("south.path", "Dr Priya Shah", 1, "pathologist", None),
    ("south.surg", "Ms Ellen Byrne", 1, "clinician", "surgery"),
    ("student", "Alex Student", 0, "student", None),
)
# (accession, organisation, priority, patient, specimen, slide files); all names fictional
CASES = (
    (
        "DEMO-24-0101",
        0,
        "urgent",
        Patient("Margaret Ellis", "943 476 5919", "1958-03-14"),
        "Left breast, core biopsy",
        ("demo-breast-he.tiff",),
    ),
    (
        "DEMO-24-0102",
        0,
        "2ww",
        Patient("John Carter", "943 476 5870", "1961-11-02"),
        "Sigmoid colon, polypectomy",
        ("demo-colon-he.tiff", "demo-breast-he.tiff"),
    ),
    (
        "DEMO-24-0103",
        0,
        "routine",
        Patient("Aisha Begum", "943 476 5838", "1979-06-21"),
        "Skin, left forearm, excision",
        ("demo-colon-he.tiff",),
    ),
    (
        "DEMO-24-0201",
        1,
        "urgent",
        Patient("Robert Hughes", "943 476 5781", "1949-01-30"),
        "Right breast, wide local excision",
        ("demo-colon-he.tiff",),
    ),
    (
        "DEMO-24-0202",
        1,
        "routine",
        Patient("Grace Wood", "943 476 5749", "1985-09-09"),
        "Endometrium, pipelle biopsy",
        ("demo-breast-he.tiff",),
    ),
)
# (file, level-0 width, height, seed): the first is the size of a real resection slide.
SLIDES = (
    ("demo-breast-he.tiff", 46_000, 32_000, 1),
    ("demo-colon-he.tiff", 24_000, 18_000, 2),
)


def _progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{label}: {100 * done // max(total, 1):3d}%", end="", file=sys.stderr, flush=True)

    return report


def _next_tuesday_lunchtime() -> str:
    """The demo's MDT: next Tuesday at 13:00 UK time (a week on if today is Tuesday), so that
    it is always upcoming on the worklist."""
    today = datetime.now(UK).date()
    tuesday = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
    return f"{tuesday.isoformat()}T13:00"


async def seed_demo(settings: Settings) -> None:
    """Fill an empty data dir with demo data; a data dir that has cases is left alone."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with Database(settings.database_path, settings.database_url) as db:
        if await db.catalog.cases():
            print(f"Using the existing data in {settings.data_dir}", file=sys.stderr)
            if await db.people.user_by_username(PEOPLE[0][0]) is not None:
                _print_accounts()
            return

        slide_dir = settings.data_dir / "demo-slides"
        slide_dir.mkdir(exist_ok=True)
        for name, width, height, seed in SLIDES:
            path = slide_dir / name
            if not path.exists():
                partial = path.with_suffix(".partial")
                report = _progress(f"Generating {name} ({width:,} x {height:,} px)")
                await asyncio.to_thread(
                    generate_demo_slide, partial, l0_width=width, l0_height=height, seed=seed, progress=report
                )
                partial.rename(path)  # a half-written slide is never registered
                if sys.stderr.isatty():
                    print(file=sys.stderr)
        orgs = [await db.catalog.add_org(name, network) for name, network in ORGANISATIONS]
        password_hash = await asyncio.to_thread(hash_password, DEMO_PASSWORD)
        people = {
            username: await db.people.add_user(
                username,
                display_name=name,
                org_id=orgs[org].id,
                role=role,
                specialty=specialty,
                password_hash=password_hash,
            )
            for username, name, org, role, specialty in PEOPLE
        }
        for accession, org, priority, patient, specimen, files in CASES:
            assignee = people["north.path" if org == 0 else "south.path"]
            case = await db.catalog.add_case(
                accession, orgs[org].id, priority, patient=patient, specimen=specimen, assigned_to=assignee.id
            )
            for name, width, height, _ in SLIDES:
                if name in files:
                    record, _ = await db.catalog.add_slide(
                        case.id,
                        str((slide_dir / name).resolve()),
                        width=width,
                        height=height,
                        vendor="generic-tiff",
                        stain="H&E",
                    )
                    await queue_for_new_slide(db, record.id, case.id, settings.analyse_on_registration)
            if accession == "DEMO-24-0101":
                # A second opinion across networks, and a teaching case for the student.
                await share_case(
                    db, case, person=people["south.path"], org=None, contributing=True, by=None, client="demo"
                )
                await share_case(
                    db, case, person=people["student"], org=None, contributing=False, by=None, client="demo"
                )
        # One MDT meeting of the North trust; its agenda is opened to the South pathologist attending.
        agenda = [await db.catalog.case_by_accession(a) for a in ("DEMO-24-0101", "DEMO-24-0102")]
        await create_meeting(
            db,
            "Breast MDT",
            org=orgs[0],
            starts=utc_from_uk(_next_tuesday_lunchtime()),
            chair=people["north.path"],
            coordinator=people["admin"],
            attendees=[people["north.onc"], people["south.path"]],
            cases=[case for case in agenda if case is not None],
            by=None,
            client="demo",
        )
        # A teaching session of the North pathologist: students join with its code, no account.
        teaching = await create_session(
            db,
            "Breast pathology teaching",
            educator=people["north.path"],
            cases=[case for case in agenda if case is not None],
            case_document=_empty_document,
            client="demo",
        )
        print(
            f"Teaching session: students join at http://{settings.host}:{settings.port}/join/{teaching.code}"
            f" (code {teaching.code}); north.path leads it from /teaching.",
            file=sys.stderr,
        )
    print(f"Demo data ready in {settings.data_dir}.", file=sys.stderr)
    _print_accounts()


async def _empty_document(case_id: str) -> Doc[Any]:
    """A new demo case has nothing drawn on it yet."""
    return Doc()


def _print_accounts() -> None:
    print(f"Sign in as any of these, password {DEMO_PASSWORD!r}:", file=sys.stderr)
    for username, name, org, role, _ in PEOPLE:
        print(f"  {username:<12} {role:<12} {name} ({ORGANISATIONS[org][0]})", file=sys.stderr)
