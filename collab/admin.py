"""What the administrative commands do: organisations, people, cases, meetings, slides."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pycrdt import Doc

from collab.analysis.jobs import queue_for_new_slide
from collab.analysis.registry import on_registration
from collab.cases import CaseFields, CaseRefused, create_case
from collab.config import Settings
from collab.domain import User
from collab.integrations import ConfigError, load_integrations
from collab.meeting_plans import utc_from_uk
from collab.meetings import MeetingRefused, create_meeting
from collab.security import MIN_PASSWORD_LENGTH, hash_password, new_token, token_hash
from collab.sharing import share_case
from collab.slides import SlideError, check_slide
from collab.slides.dicomweb import DicomWebRef
from collab.store import Database
from collab.store.accounts import token_expiry
from collab.store.database import StoreError
from collab.teaching import TeachingRefused, create_session


class CommandError(Exception):
    """A one-line message for stderr and a non-zero exit."""


async def run_admin(args: argparse.Namespace) -> int:
    """Run one of the ``orgs``, ``users``, ``cases``, ``meetings`` or ``slides`` commands."""
    async with Database(Settings(data_dir=args.data_dir).database_path, args.database_url) as db:
        command = (args.command, args.action)
        if command == ("orgs", "add"):
            org = await db.catalog.add_org(args.name, args.network)
            print(org.name)
        elif command == ("users", "add"):
            await _users_add(db, args)
        elif command == ("users", "token") and args.revoke is not None:
            await _users_token_revoke(db, args.username, args.revoke)
        elif command == ("users", "token"):
            await _users_token(db, args.username, args.scope, args.expires_days)
        elif command == ("users", "tokens"):
            await _users_tokens(db, args.username)
        elif command == ("cases", "add"):
            await _cases_add(db, args)
        elif command == ("cases", "share"):
            await _cases_share(db, args)
        elif command == ("meetings", "add"):
            await _meetings_add(db, args)
        elif command == ("teaching", "add"):
            await _teaching_add(db, args)
        elif command == ("slides", "add-dicomweb"):
            return await _slides_add_dicomweb(db, args)
        else:
            analyses = on_registration(args.analyse_on_registration)
            return await _slides_add(db, args.paths, args.case, args.stain, analyses)
    return 0


async def _org(db: Database, name: str) -> int:
    org = await db.catalog.org_by_name(name)
    if org is None:
        raise CommandError(f"no organisation named {name!r} (create it with: collab orgs add NAME)")
    return org.id


async def _users_add(db: Database, args: argparse.Namespace) -> None:
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    org_id = await _org(db, args.org)
    password_hash = await asyncio.to_thread(hash_password, password)
    user = await db.people.add_user(
        args.username,
        display_name=args.name or args.username,
        org_id=org_id,
        role=args.role,
        specialty=args.specialty,
        password_hash=password_hash,
    )
    print(user.username)


async def _users_token(db: Database, username: str, scope: str | None, days: int | None) -> None:
    user = await _user(db, username)
    token = new_token()
    try:
        expires = token_expiry(days)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    token_id = await db.people.add_token(user.id, token_hash(token), scope=scope, expires=expires)
    await db.audit.record("token created", user=user, client="command line", detail=f"token {token_id}")
    print(token)


async def _users_tokens(db: Database, username: str) -> None:
    """One line per token, tab-separated under a header; never the token itself."""
    user = await _user(db, username)
    print("id\tcreated\tlast used\tstatus\tscope")
    for token in await db.people.tokens(user.id):
        status = f"revoked {token.revoked}" if token.revoked else "active"
        print(f"{token.id}\t{token.created}\t{token.last_used or 'never'}\t{status}\t{token.scope or 'full'}")


async def _users_token_revoke(db: Database, username: str, token_id: int) -> None:
    user = await _user(db, username)
    token = next((t for t in await db.people.tokens(user.id) if t.id == token_id), None)
    if token is None:
        raise CommandError(f"{username} has no token {token_id}")
    if not await db.people.revoke_token(user.id, token_id):
        print(f"token {token_id} of {username} was already revoked")
        return
    await db.audit.record("token revoked", user=user, client="command line", detail=f"token {token_id}")
    print(f"token {token_id} of {username} revoked")


async def _cases_add(db: Database, args: argparse.Namespace) -> None:
    assigned_to = None
    if args.assign:
        assignee = await db.people.user_by_username(args.assign)
        if assignee is None:
            raise CommandError(f"no user named {args.assign!r}")
        assigned_to = assignee.id
    org = await db.catalog.org(await _org(db, args.org))
    assert org is not None
    # The same checks and audit as a case made in the browser (collab.cases).
    fields = CaseFields(
        args.priority,
        args.patient_name or "",
        args.nhs_number or "",
        args.date_of_birth or "",
        args.specimen or "",
        args.clinical_details or "",
    )
    try:
        case = await create_case(
            db, args.accession, org, fields, assigned_to=assigned_to, by=None, client="command line"
        )
    except CaseRefused as exc:
        raise CommandError(str(exc)) from None
    print(case.id)


async def _cases_share(db: Database, args: argparse.Namespace) -> None:
    case = await db.catalog.case_by_accession(args.accession)
    if case is None:
        raise CommandError(f"no case with accession {args.accession!r}")
    person = org = None
    if args.user:
        person = await db.people.user_by_username(args.user)
        if person is None:
            raise CommandError(f"no user named {args.user!r}")
    else:
        org = await db.catalog.org_by_name(args.org)
        if org is None:
            raise CommandError(f"no organisation named {args.org!r}")
    await share_case(
        db, case, person=person, org=org, contributing=not args.read_only, by=None, client="command line"
    )
    print(
        f"{args.accession} shared with {args.user or args.org}, "
        + ("read-only" if args.read_only else "contributing")
    )


async def _user(db: Database, username: str) -> User:
    user = await db.people.user_by_username(username)
    if user is None:
        raise CommandError(f"no user named {username!r}")
    return user


async def _meetings_add(db: Database, args: argparse.Namespace) -> None:
    org = await db.catalog.org_by_name(args.org)
    if org is None:
        raise CommandError(f"no organisation named {args.org!r} (create it with: collab orgs add NAME)")
    cases = []
    for accession in args.case:
        case = await db.catalog.case_by_accession(accession)
        if case is None:
            raise CommandError(f"no case with accession {accession!r}")
        cases.append(case)
    try:
        meeting = await create_meeting(
            db,
            args.name,
            org=org,
            starts=utc_from_uk(args.starts),  # given in UK local time, as in the browser
            chair=await _user(db, args.chair),
            coordinator=await _user(db, args.coordinator),
            attendees=[await _user(db, username) for username in args.attendee],
            cases=cases,
            by=None,
            client="command line",
        )
    except MeetingRefused as exc:
        raise CommandError(str(exc)) from None
    print(meeting.id)


async def _teaching_add(db: Database, args: argparse.Namespace) -> None:
    cases = []
    for accession in args.case:
        case = await db.catalog.case_by_accession(accession)
        if case is None:
            raise CommandError(f"no case with accession {accession!r}")
        cases.append(case)

    async def case_document(case_id: str) -> Doc[Any]:
        doc: Doc[Any] = Doc()
        for update in await db.documents.load(case_id):
            doc.apply_update(update)
        return doc

    try:
        session = await create_session(
            db,
            args.title,
            educator=await _user(db, args.educator),
            cases=cases,
            case_document=case_document,
            client="command line",
        )
    except TeachingRefused as exc:
        raise CommandError(str(exc)) from None
    print(f"{session.code}\t{args.url.rstrip('/')}/join/{session.code}\t{session.id}")


async def _slides_add_dicomweb(db: Database, args: argparse.Namespace) -> int:
    """Register a series in a PACS (only its reference is kept); checks it opens first."""
    case = await db.catalog.case_by_accession(args.case)
    if case is None:
        raise CommandError(f"no case with accession {args.case!r} (create it with: collab cases add)")
    try:
        # A PACS asking for credentials is named in the server's settings file.
        config = os.environ.get("COLLAB_CONFIG")
        endpoint = load_integrations(Path(config) if config else None).pacs_for_url(args.url)
        ref = DicomWebRef(args.url, args.study, args.series, endpoint)
        width, height, vendor = await asyncio.to_thread(check_slide, ref)
    except (SlideError, ConfigError) as exc:
        raise CommandError(f"refused: {exc}") from None
    record, new = await db.catalog.add_slide(
        case.id, ref.text(), width=width, height=height, vendor=vendor, stain=args.stain
    )
    if new:
        await queue_for_new_slide(db, record.id, case.id, on_registration(args.analyse_on_registration))
    else:
        print(f"collab: that series was already registered with case {args.case}", file=sys.stderr)
    print(f"{record.id}\t{record.path}")
    return 0


async def _slides_add(
    db: Database, paths: list[Path], accession: str, stain: str | None, analyses: tuple[str, ...]
) -> int:
    case = await db.catalog.case_by_accession(accession)
    if case is None:
        raise CommandError(f"no case with accession {accession!r} (create it with: collab cases add)")
    failures = 0
    show_progress = sys.stderr.isatty() and len(paths) > 1
    for number, path in enumerate(paths, start=1):
        if show_progress:
            print(f"\r[{number}/{len(paths)}] checking {path.name}", end="", file=sys.stderr, flush=True)
        try:
            width, height, vendor = await asyncio.to_thread(check_slide, path)
        except SlideError as exc:
            failures += 1
            prefix = "\n" if show_progress else ""
            print(f"{prefix}collab: refused {path}: {exc}", file=sys.stderr)
            continue
        record, new = await db.catalog.add_slide(
            case.id, str(path.resolve()), width=width, height=height, vendor=vendor, stain=stain
        )
        if new:
            await queue_for_new_slide(db, record.id, case.id, analyses)
        else:
            print(f"collab: {path} was already registered with case {accession}", file=sys.stderr)
        if show_progress:
            print("\r\033[K", end="", file=sys.stderr)
        print(f"{record.id}\t{record.path}")
    return 1 if failures else 0
