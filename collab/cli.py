"""The ``collab`` command line: argv -> Settings -> one command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from collab.config import Settings, default_data_dir
from collab.domain import PRIORITIES
from collab.slides import SlideError, open_slide
from collab.slides.cache import SizedLRU
from collab.store import Database, StoreError


class CommandError(Exception):
    """A one-line message for stderr and a non-zero exit."""


def _parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(environ),
        help="folder of the database and derived files (default: $COLLAB_DATA_DIR or ./collab-data)",
    )
    parser = argparse.ArgumentParser(prog="collab", description="Look at whole-slide images together, live.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--access-log", action="store_true", help="log every request")
    server.add_argument(
        "--tile-cache-mb", type=int, default=128, help="memory for encoded tiles (default 128)"
    )
    server.add_argument(
        "--pixel-cache-mb", type=int, default=256, help="memory for decoded slide pixels (default 256)"
    )
    commands.add_parser("serve", parents=[common, server], help="run the server")
    commands.add_parser("demo", parents=[common, server], help="seed demo data if there is none, then serve")

    orgs = commands.add_parser("orgs", help="organisations (hospital trusts)")
    orgs_cmd = orgs.add_subparsers(dest="action", required=True, metavar="ACTION")
    orgs_add = orgs_cmd.add_parser("add", parents=[common], help="create an organisation")
    orgs_add.add_argument("name")
    orgs_add.add_argument("--network", help="the pathology network it belongs to")

    cases = commands.add_parser("cases", help="cases")
    cases_cmd = cases.add_subparsers(dest="action", required=True, metavar="ACTION")
    cases_add = cases_cmd.add_parser("add", parents=[common], help="create a case; prints its id")
    cases_add.add_argument("accession")
    cases_add.add_argument("--org", required=True, help="the owning organisation's name")
    cases_add.add_argument("--priority", choices=PRIORITIES, default="routine")

    slides = commands.add_parser("slides", help="slides")
    slides_cmd = slides.add_subparsers(dest="action", required=True, metavar="ACTION")
    slides_add = slides_cmd.add_parser(
        "add", parents=[common], help="register slide files with a case (nothing is copied)"
    )
    slides_add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    slides_add.add_argument("--case", required=True, help="the case's accession number")
    slides_add.add_argument("--stain", help="e.g. H&E, Ki-67")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = _parser(dict(os.environ)).parse_args(argv)
    # Library warnings (a damaged file's skipped pages) become our own messages;
    # only errors of libraries reach the terminal as they are.
    stderr_handler = logging.StreamHandler()
    stderr_handler.setLevel(logging.ERROR)
    logging.basicConfig(handlers=[stderr_handler], format="%(name)s: %(message)s")
    # The slide readers turn tifffile's complaints into the refusal message.
    logging.getLogger("tifffile").propagate = False
    try:
        if args.command in ("serve", "demo"):
            from collab.serve import serve

            if args.tile_cache_mb < 1 or args.pixel_cache_mb < 1:
                raise CommandError("cache sizes are whole megabytes, at least 1")
            settings = Settings(
                data_dir=args.data_dir,
                host=args.host,
                port=args.port,
                tile_cache_mb=args.tile_cache_mb,
                pixel_cache_mb=args.pixel_cache_mb,
            )

            if args.command == "demo":
                from collab.demo import seed_demo

                asyncio.run(seed_demo(settings))
                print(f"Open http://{args.host}:{args.port}/ in a browser.", file=sys.stderr)
            serve(settings, access_log=args.access_log)
            return 0
        return asyncio.run(_admin(args))
    except (CommandError, StoreError, SlideError) as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _admin(args: argparse.Namespace) -> int:
    async with Database(Settings(data_dir=args.data_dir).database_path) as db:
        if args.command == "orgs":
            org = await db.add_org(args.name, args.network)
            print(org.name)
            return 0
        if args.command == "cases":
            owner = await db.org_by_name(args.org)
            if owner is None:
                raise CommandError(
                    f"no organisation named {args.org!r} (create it with: collab orgs add NAME)"
                )
            case = await db.add_case(args.accession, owner.id, args.priority)
            print(case.id)
            return 0
        return await _slides_add(db, args.paths, args.case, args.stain)
    return 2


async def _slides_add(db: Database, paths: list[Path], accession: str, stain: str | None) -> int:
    case = await db.case_by_accession(accession)
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
            print(
                f"\ncollab: refused {path}: {exc}" if show_progress else f"collab: refused {path}: {exc}",
                file=sys.stderr,
            )
            continue
        record, new = await db.add_slide(
            case.id, str(path.resolve()), width=width, height=height, vendor=vendor, stain=stain
        )
        if not new:
            print(f"collab: {path} was already registered with case {accession}", file=sys.stderr)
        if show_progress:
            print("\r\033[K", end="", file=sys.stderr)
        print(f"{record.id}\t{record.path}")
    return 1 if failures else 0


def check_slide(path: Path) -> tuple[int, int, str | None]:
    """Open and spot-check a slide file; raises SlideError with a reason if it is unusable."""
    if not path.exists():
        raise SlideError("the slide file is missing")
    if not os.access(path, os.R_OK):
        raise SlideError("permission denied")
    reader = open_slide(path, SizedLRU(64 << 20))
    try:
        reader.verify()
        level0 = reader.levels[0]
        return level0.width, level0.height, reader.properties.vendor
    finally:
        reader.close()
