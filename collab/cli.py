"""The ``collab`` command line: argv -> Settings -> one command."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from collab import analysis_commands, datadir
from collab.admin import CommandError, run_admin
from collab.analysis.registry import DEFAULT_ON_REGISTRATION, UnknownAnalysis, on_registration
from collab.backup import BackupError, take_backup
from collab.config import DEFAULT_MAX_CONNECTIONS, Settings, default_data_dir, read_decisions
from collab.datadir import DATABASE
from collab.domain import DECISIONS, PRIORITIES, ROLES, SPECIALTIES
from collab.integrations import ConfigError, Integrations, load_integrations
from collab.restore import restore
from collab.slides import SlideError
from collab.store import StoreError
from collab.store.dburl import DatabaseUrlError, parse_database_url


def _proxy_address(value: str) -> str:
    """A trusted proxy's address or network, written the way uvicorn compares it."""
    try:
        if "/" in value:
            return str(ipaddress.ip_network(value.strip(), strict=False))
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
        ) from None


def _trusted_proxies(args: argparse.Namespace) -> tuple[str, ...]:
    if args.trusted_proxy:
        return tuple(args.trusted_proxy)
    try:
        return tuple(_proxy_address(v) for v in args.trusted_proxies_env.replace(",", " ").split())
    except argparse.ArgumentTypeError as exc:
        raise CommandError(f"COLLAB_TRUSTED_PROXIES: {exc}") from None


def _decisions(path: Path | None) -> tuple[str, ...]:
    """The ``--decisions`` file's list, or the built-in one."""
    if path is None:
        return DECISIONS
    try:
        return read_decisions(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read the decisions file {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: {exc}") from exc


# A scraper's token guards server-wide figures; one shorter than this is a password, not a token.
MIN_METRICS_TOKEN_CHARS = 32


def _metrics_token(environ: Mapping[str, str]) -> str | None:
    """``$COLLAB_METRICS_TOKEN``: from the environment only, since a command line is seen by
    every user of the machine (``ps``)."""
    token = environ.get("COLLAB_METRICS_TOKEN", "").strip()
    if token and len(token) < MIN_METRICS_TOKEN_CHARS:
        raise CommandError(
            f"COLLAB_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters"
            " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token or None


def _integrations(path: str | Path | None) -> Integrations:
    try:
        return load_integrations(Path(path) if path else None)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(environ),
        help="folder of the database and derived files (default: $COLLAB_DATA_DIR or ./collab-data)",
    )
    common.add_argument(
        "--database-url",
        default=environ.get("COLLAB_DATABASE_URL") or None,
        metavar="URL",
        help="postgresql://USER@HOST:PORT/DB to keep the data in PostgreSQL (default:"
        " $COLLAB_DATABASE_URL, else the SQLite file in the data dir); give a password by"
        " $COLLAB_DATABASE_URL, PGPASSWORD or ~/.pgpass, not here, where ps shows it",
    )
    # Which analyses a newly registered slide gets, wherever it is registered from.
    registration = argparse.ArgumentParser(add_help=False)
    registration.add_argument(
        "--analyse-on-registration",
        default=environ.get("COLLAB_ANALYSE_ON_REGISTRATION") or DEFAULT_ON_REGISTRATION,
        metavar="NAMES",
        help="the analyses queued for each new slide, comma-separated, or 'none' (default:"
        f" $COLLAB_ANALYSE_ON_REGISTRATION, else {DEFAULT_ON_REGISTRATION}; docs/analysis.md)",
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
    server.add_argument(
        "--tile-processes",
        type=int,
        default=0,
        metavar="N",
        help="draw tiles in N worker processes, away from the live rooms' event loop (default 0: "
        "threads of the server's own process)",
    )
    server.add_argument(
        "--analysis-workers",
        type=int,
        default=_whole(environ.get("COLLAB_ANALYSIS_WORKERS"), 1),
        metavar="N",
        help="worker processes running queued slide analyses beside the server (default:"
        " $COLLAB_ANALYSIS_WORKERS, else 1; 0: none, e.g. when `collab analyses worker` runs elsewhere)",
    )
    server.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help="share rooms with the other collab serve processes on this Redis, e.g. "
        "redis://127.0.0.1:6379/0 (default $COLLAB_REDIS_URL; none: this process serves every room alone)",
    )
    server.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="open connections (websockets included) past which new ones are refused with 503"
        f" (default {DEFAULT_MAX_CONNECTIONS})",
    )
    server.add_argument(
        "--trusted-proxy",
        action="append",
        type=_proxy_address,
        metavar="ADDR",
        help="a reverse proxy (IP address or network) whose X-Forwarded-For and X-Forwarded-Proto are"
        " believed; repeatable (default: $COLLAB_TRUSTED_PROXIES, comma-separated, else none)",
    )
    server.add_argument(
        "--import-dir", type=Path, help="a scanner's drop folder of new slides (default: DATA_DIR/import)"
    )
    server.add_argument(
        "--import-org", help="the organisation whose slides the import folder holds (default: the only one)"
    )
    server.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="the decisions an MDT outcome chooses from, one per line (default: the built-in list)",
    )
    server.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file of the PACS to read slides from and the trusts' sign-on (docs/integration.md;"
        " default: $COLLAB_CONFIG, else none)",
    )
    server.set_defaults(trusted_proxies_env=environ.get("COLLAB_TRUSTED_PROXIES", ""))
    # A token is never an option: the command line of a process is visible to every user (ps).
    environment = (
        "environment: COLLAB_METRICS_TOKEN, a bearer token (32+ characters) that opens /metrics to a"
        " Prometheus scraper; without it only administrators read /metrics (docs/operations.md)"
    )
    commands.add_parser(
        "serve", parents=[common, server, registration], help="run the server", epilog=environment
    )
    commands.add_parser(
        "demo",
        parents=[common, server, registration],
        help="seed demo data if there is none, then serve",
        epilog=environment,
    )

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
    cases_add.add_argument("--patient-name", help="identifiable: shown only to those allowed")
    cases_add.add_argument("--nhs-number", help="identifiable: shown only to those allowed")
    cases_add.add_argument("--date-of-birth", help="YYYY-MM-DD; identifiable")
    cases_add.add_argument("--specimen", help="e.g. 'Left breast, wide local excision'")
    cases_add.add_argument("--clinical-details")
    cases_add.add_argument("--assign", metavar="USERNAME", help="the pathologist the case is assigned to")
    cases_share = cases_cmd.add_parser(
        "share", parents=[common], help="share a case with a person or an organisation"
    )
    cases_share.add_argument("accession")
    target = cases_share.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="USERNAME")
    target.add_argument("--org", metavar="ORG")
    cases_share.add_argument("--read-only", action="store_true", help="view only (default: contributing)")

    users = commands.add_parser("users", help="people")
    users_cmd = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    users_add = users_cmd.add_parser("add", parents=[common], help="create a user")
    users_add.add_argument("username")
    users_add.add_argument("--role", required=True, choices=ROLES)
    users_add.add_argument("--org", required=True, help="the user's organisation")
    users_add.add_argument("--name", help='display name, e.g. "Dr Ada Lovelace"')
    users_add.add_argument("--specialty", choices=SPECIALTIES, help="for clinicians")
    users_add.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from standard input"
    )
    users_token = users_cmd.add_parser(
        "token", parents=[common], help="print a new API token for a user (shown once), or revoke one"
    )
    users_token.add_argument("username")
    users_token.add_argument("--scope", choices=("read", "write"), help="read: may not change anything")
    users_token.add_argument("--expires-days", type=int, metavar="N", help="the token ends after N days")
    users_token.add_argument(
        "--revoke", type=int, metavar="ID", help="revoke their token of that id (see: collab users tokens)"
    )
    users_tokens = users_cmd.add_parser(
        "tokens", parents=[common], help="list a user's API tokens: id, created, last used, status"
    )
    users_tokens.add_argument("username")

    meetings = commands.add_parser("meetings", help="MDT meetings")
    meetings_cmd = meetings.add_subparsers(dest="action", required=True, metavar="ACTION")
    meetings_add = meetings_cmd.add_parser(
        "add", parents=[common], help="create an MDT meeting; prints its id"
    )
    meetings_add.add_argument("name")
    meetings_add.add_argument("--org", required=True, help="the organisation holding the meeting")
    meetings_add.add_argument(
        "--starts", required=True, help="date and time in UK local time, e.g. 2026-12-01T13:00"
    )
    meetings_add.add_argument("--chair", required=True, metavar="USERNAME")
    meetings_add.add_argument("--coordinator", required=True, metavar="USERNAME")
    meetings_add.add_argument("--attendee", action="append", default=[], metavar="USERNAME")
    meetings_add.add_argument(
        "--case", action="append", default=[], metavar="ACCESSION", help="agenda cases, in order"
    )

    teaching = commands.add_parser("teaching", help="teaching sessions")
    teaching_cmd = teaching.add_subparsers(dest="action", required=True, metavar="ACTION")
    teaching_add = teaching_cmd.add_parser(
        "add", parents=[common], help="create a teaching session; prints its join code and link"
    )
    teaching_add.add_argument("title")
    teaching_add.add_argument("--educator", required=True, metavar="USERNAME", help="a pathologist or admin")
    teaching_add.add_argument(
        "--case", action="append", required=True, metavar="ACCESSION", help="the cases, in order"
    )
    teaching_add.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the site's address, for the printed link"
    )

    slides = commands.add_parser("slides", help="slides")
    slides_cmd = slides.add_subparsers(dest="action", required=True, metavar="ACTION")
    slides_add = slides_cmd.add_parser(
        "add", parents=[common, registration], help="register slide files with a case (nothing is copied)"
    )
    slides_add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    slides_add.add_argument("--case", required=True, help="the case's accession number")
    slides_add.add_argument("--stain", help="e.g. H&E, Ki-67")
    slides_web = slides_cmd.add_parser(
        "add-dicomweb",
        parents=[common, registration],
        help="register a slide series kept in a PACS, read over DICOMweb (only its reference is stored)",
    )
    slides_web.add_argument(
        "url", metavar="URL", help="the DICOMweb service root, e.g. http://pacs:8042/dicom-web"
    )
    slides_web.add_argument("--study", required=True, help="the Study Instance UID")
    slides_web.add_argument(
        "--series", required=True, help="the Series Instance UID of the VL whole-slide series"
    )
    slides_web.add_argument("--case", required=True, help="the case's accession number")
    slides_web.add_argument("--stain", help="e.g. H&E, Ki-67")

    analysis_commands.add_parser(commands, common)

    backup = commands.add_parser(
        "backup",
        parents=[common],
        help="copy the database and every file that cannot be rebuilt into a new folder, while serving",
    )
    backup.add_argument("dest", type=Path, metavar="DEST", help="a new (or empty) folder for the backup")
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="put a backup back (the server must be stopped); the data it replaces is kept aside",
    )
    restore.add_argument("src", type=Path, metavar="SRC", help="a folder made by collab backup")
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
        if args.command in ("backup", "restore"):
            _sqlite_only(args.command, args.database_url, args.data_dir)
        if args.command == "backup":
            return _backup(args.data_dir, args.dest)
        if args.command == "restore":
            return _restore(args.src, args.data_dir)
        # Held while the command runs, the server's for as long as it serves: a restore refuses
        # while anything holds it (collab.datadir).
        with datadir.shared(args.data_dir):
            return _run(args)
    except (
        CommandError,
        StoreError,
        SlideError,
        BackupError,
        datadir.DataDirError,
        DatabaseUrlError,
        UnknownAnalysis,
    ) as exc:
        print(f"collab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _whole(text: str | None, default: int) -> int:
    """A whole number from the environment; the default when unset. -1 (refused later) when not
    a number, so that a typo is told, not ignored."""
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        return -1


def _redis_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise CommandError("--redis-url must start with redis://, rediss:// or unix://")
    return url


def _run(args: argparse.Namespace) -> int:
    """Every command but backup and restore."""
    if args.command in ("serve", "demo"):
        from collab.serve import serve

        if args.tile_cache_mb < 1 or args.pixel_cache_mb < 1:
            raise CommandError("cache sizes are whole megabytes, at least 1")
        if args.max_connections < 1:
            raise CommandError("--max-connections must be at least 1")
        if not 0 <= args.tile_processes <= 64:
            raise CommandError("--tile-processes must be a whole number from 0 to 64")
        if not 0 <= args.analysis_workers <= 16:
            raise CommandError("--analysis-workers must be a whole number from 0 to 16")
        settings = Settings(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            tile_cache_mb=args.tile_cache_mb,
            pixel_cache_mb=args.pixel_cache_mb,
            tile_processes=args.tile_processes,
            redis_url=_redis_url(args.redis_url or os.environ.get("COLLAB_REDIS_URL") or None),
            max_connections=args.max_connections,
            trusted_proxies=_trusted_proxies(args),
            import_dir=args.import_dir,
            import_org=args.import_org,
            decisions=_decisions(args.decisions),
            integrations=_integrations(args.config or os.environ.get("COLLAB_CONFIG") or None),
            metrics_token=_metrics_token(os.environ),
            database_url=args.database_url,
            analysis_workers=args.analysis_workers,
            analyse_on_registration=on_registration(args.analyse_on_registration),
        )

        if args.command == "demo":
            from collab.demo import seed_demo

            asyncio.run(seed_demo(settings))
            print(f"Open http://{args.host}:{args.port}/ in a browser.", file=sys.stderr)
        serve(settings, access_log=args.access_log)
        return 0
    if args.command == "analyses":
        return asyncio.run(analysis_commands.run_analyses(args))
    return asyncio.run(run_admin(args))


def _sqlite_only(command: str, url: str | None, data_dir: Path) -> None:
    target = parse_database_url(url, data_dir / DATABASE)
    if target.engine != "sqlite":
        tool = "pg_dump --format=custom" if command == "backup" else "pg_restore"
        raise CommandError(
            f"collab {command} copies a SQLite database; {target} is PostgreSQL: use {tool} for the"
            " database and copy the data dir's other files (docs/operations.md)"
        )


def _backup(data_dir: Path, dest: Path) -> int:
    manifest, notes = take_backup(data_dir, dest, show_progress=sys.stderr.isatty())
    for note in notes:
        print(f"collab: note: {note}", file=sys.stderr)
    others = [entry for entry in manifest.files if entry.path != DATABASE]
    print(
        f"{dest}: the database (schema {manifest.schema}, {_mb(manifest.files[0].bytes)}) as of"
        f" {manifest.taken}, and {len(others)} other files ({_mb(sum(e.bytes for e in others))})"
    )
    return 0


def _restore(src: Path, data_dir: Path) -> int:
    manifest, aside = restore(src, data_dir, show_progress=sys.stderr.isatty())
    print(f"{data_dir}: restored the backup taken {manifest.taken} from {manifest.data_dir}")
    if aside is not None:
        print(f"what {data_dir} held before is kept in {aside}")
    if Path(manifest.data_dir) != data_dir.absolute() and any(
        entry.path.startswith("slides/") for entry in manifest.files
    ):
        # Uploaded slides are recorded by their full path (collab.web.uploads).
        print(
            f"collab: note: slides uploaded through the browser are recorded under {manifest.data_dir};"
            " serve from that folder for them to be found (docs/operations.md)",
            file=sys.stderr,
        )
    return 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
