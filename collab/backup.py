"""``collab backup DEST``: a consistent copy of a data dir while the server goes on serving.

A backup is a folder: the database (one self-contained SQLite file), every other file of the
data dir that cannot be rebuilt (collab.datadir says which), in the same layout, and
``manifest.json`` listing each file with its size and SHA-256. It is built in a hidden folder
beside DEST and renamed to DEST only once complete and flushed to disk, so a folder named DEST
holding a manifest is always a whole backup; an interrupted one leaves ``.DEST.incomplete-*``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collab import __version__, datadir
from collab.datadir import DATABASE
from collab.store.migrations import MIGRATIONS

MANIFEST = "manifest.json"
FORMAT = "collab backup"
FORMAT_VERSION = 1
CHUNK = 1 << 20
# Pages copied per step of SQLite's backup (4 MiB of 4 KiB pages): progress, and Ctrl-C, between steps.
STEP_PAGES = 1024


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is fit to show an operator."""


@dataclass(frozen=True)
class Entry:
    """One file of a backup: its path inside the backup (``/``-separated), size and SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, and when and by what it was taken."""

    taken: str  # when the database's snapshot was taken (UTC, ISO 8601)
    collab_version: str
    schema: int  # the database's PRAGMA user_version
    data_dir: str  # the folder it was taken from
    files: tuple[Entry, ...]

    def to_json(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "files"}
        files = [asdict(entry) for entry in self.files]
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **fields, "files": files}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The manifest a backup's ``manifest.json`` holds; ValueError saying what is wrong."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("it is not a collab backup manifest")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"it is of format version {data.get('version')!r}; this collab reads version 1")
        taken, version, schema, data_dir = (
            data.get(k) for k in ("taken", "collab_version", "schema", "data_dir")
        )
        if not (isinstance(taken, str) and isinstance(version, str) and isinstance(data_dir, str)):
            raise ValueError("taken, collab_version or data_dir is missing")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise ValueError("schema is not a schema version")
        files = data.get("files")
        if not isinstance(files, list):
            raise ValueError("files is not a list")
        entries = tuple(_entry_of(item) for item in files)
        paths = [entry.path for entry in entries]
        if len(set(paths)) != len(paths):
            raise ValueError("it lists a file twice")
        if DATABASE not in paths:
            raise ValueError(f"it does not list the database ({DATABASE})")
        return cls(taken, version, schema, data_dir, entries)


def _entry_of(item: Any) -> Entry:
    if not isinstance(item, dict) or set(item) != {"path", "bytes", "sha256"}:
        raise ValueError("a file's entry is not {path, bytes, sha256}")
    path, size, digest = item["path"], item["bytes"], item["sha256"]
    parts = path.split("/") if isinstance(path, str) else []
    # Paths are only ever inside the backup and the data dir: no "..", no absolute path.
    if not parts or any(part in ("", ".", "..") or "\\" in part for part in parts):
        raise ValueError(f"a file's path is not a plain relative path: {path!r}")
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"the size of {path} is not a number of bytes")
    if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise ValueError(f"the checksum of {path} is not a SHA-256")
    return Entry(path, size, digest)


class Progress:
    """``label: N%`` on one line of a terminal; silent otherwise."""

    def __init__(self, label: str, total: int, *, show: bool) -> None:
        self.label, self.total, self.show = label, max(total, 1), show
        self.done = 0
        self._shown = -1

    def add(self, amount: int) -> None:
        self.set(self.done + amount)

    def set(self, done: int) -> None:
        self.done = done
        percent = min(100, 100 * done // self.total)
        if self.show and percent != self._shown:
            self._shown = percent
            print(f"\r{self.label}: {percent}%", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.show and self._shown >= 0:
            print(file=sys.stderr)


def copy_file(source: Path, target: Path, progress: Progress | None = None) -> tuple[int, str]:
    """Copy one file to a new file (0600), flushed to disk; returns its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with source.open("rb") as reader:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as writer:
            while chunk := reader.read(CHUNK):
                writer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress:
                    progress.add(len(chunk))
            writer.flush()
            os.fsync(writer.fileno())
    return size, digest.hexdigest()


def file_digest(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress:
                progress.add(len(chunk))
    return size, digest.hexdigest()


def fsync_dirs(root: Path) -> None:
    """Flush the folder entries under ``root`` (and root's own), so renames and new files last."""
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_under(root: Path, notes: list[str] | None = None) -> Iterator[tuple[Path, str]]:
    """Every regular file under ``root`` (links to files followed) and its ``/``-separated path.

    A link to a folder is not followed (it may lead anywhere, even back up): it is named in ``notes``.
    """
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                if notes is not None:
                    notes.append(f"not copied, a link to a folder elsewhere: {here / name}")
                dirs.remove(name)
        dirs.sort()
        for name in sorted(names):
            if (here / name).is_file():
                yield here / name, (here / name).relative_to(root).as_posix()


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def take_backup(data_dir: Path, dest: Path, *, show_progress: bool = False) -> tuple[Manifest, list[str]]:
    """Back up ``data_dir`` into the new folder ``dest``; returns its manifest and notes for the operator.

    BackupError when it cannot be done; then nothing is left at ``dest``.
    """
    database = data_dir / DATABASE
    if not database.is_file():
        raise BackupError(f"{data_dir} holds no database ({DATABASE}): nothing to back up")
    _check_dest(data_dir, dest)
    notes: list[str] = []
    work: Path | None = None
    try:
        # Shared, as the server's: a restore cannot swap the data while it is being copied.
        with datadir.shared(data_dir):
            parent = dest.absolute().parent
            parent.mkdir(parents=True, exist_ok=True)
            try:
                # Beside DEST, so the final rename stays on one file system and is atomic.
                work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incomplete-", dir=parent))
            except OSError as exc:  # named by the folder the operator chose, not our temporary name
                raise OSError(exc.errno, exc.strerror, str(parent)) from exc
            taken, schema = _copy_database(database, work / DATABASE, show_progress)
            entries = [Entry(DATABASE, *file_digest(work / DATABASE))]
            # After the database's snapshot: a slide uploaded meanwhile is copied without its row,
            # which is harmless; the other way round would keep rows whose files are missing.
            entries += _copy_files(data_dir, work, notes, show_progress)
            manifest = Manifest(taken, __version__, schema, str(data_dir.absolute()), tuple(entries))
            _write_manifest(work, manifest)
            fsync_dirs(work)
            os.rename(work, dest)  # DEST is absent or an empty folder, which rename replaces
            work = None
            fsync_dir(parent)
    except datadir.DataDirError as exc:
        raise BackupError(str(exc)) from None
    except OSError as exc:
        raise BackupError(f"cannot back up to {dest}: {_reason(exc)}; nothing was kept") from exc
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up to {dest}: SQLite says {exc}; nothing was kept") from exc
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return manifest, notes


def _check_dest(data_dir: Path, dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise BackupError(f"{dest} exists and is not a folder; name a new folder for the backup")
        if any(dest.iterdir()):
            held = " (it holds a backup)" if (dest / MANIFEST).exists() else ""
            raise BackupError(
                f"{dest} is not empty{held}; name a new folder: a backup never overwrites anything"
            )
    if dest.resolve().is_relative_to(data_dir.resolve()):
        # Each backup would copy the ones before it; and a backup belongs on another disk.
        raise BackupError(f"{dest} is inside the data dir {data_dir}; keep backups elsewhere")


def _copy_database(database: Path, target: Path, show_progress: bool) -> tuple[str, int]:
    """Copy the live database with SQLite's backup API and check the copy; (when, schema version)."""
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        # One read transaction around every step, so all steps copy the same snapshot. In WAL
        # mode a reader never blocks the server's writes, and without it SQLite restarts a stepped
        # backup whenever another process writes: a busy room (an update every few ms) would keep
        # it restarting for ever.
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        taken = utc_now().isoformat()
        # Made first so that SQLite keeps its mode: the database holds patient identifiers.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        copy = sqlite3.connect(target)
        try:
            progress = Progress("copying the database", 1, show=show_progress)

            def step(status: int, remaining: int, total: int) -> None:
                progress.total = max(total, 1)
                progress.set(total - remaining)

            source.backup(copy, pages=STEP_PAGES, progress=step, sleep=0.05)
            progress.end()
            # One self-contained file, no -wal beside it; the server turns WAL back on when it opens it.
            copy.execute("PRAGMA journal_mode=DELETE").fetchone()
            problems = [row[0] for row in copy.execute("PRAGMA integrity_check").fetchall()]
            schema = int(copy.execute("PRAGMA user_version").fetchone()[0])
        finally:
            copy.close()
    finally:
        source.close()
    if problems != ["ok"]:
        # The copy is page for page the database: the damage is in the data dir's database.
        raise BackupError(
            f"the database in {database.parent} fails SQLite's integrity check ({problems[0]});"
            " nothing was kept"
        )
    if schema > len(MIGRATIONS):
        raise BackupError(
            f"the database was written by a newer collab (schema {schema}; this one knows up to"
            f" {len(MIGRATIONS)}): back it up with that version"
        )
    return taken, schema


def _copy_files(data_dir: Path, work: Path, notes: list[str], show_progress: bool) -> list[Entry]:
    tops = sorted(entry for entry in data_dir.iterdir() if datadir.backed_up(entry.name))
    found: list[tuple[Path, str]] = []
    for top in tops:
        if top.is_symlink() and top.is_dir():
            notes.append(f"not copied, a link to a folder elsewhere: {top}")
        elif top.is_dir():
            found += [(path, f"{top.name}/{rel}") for path, rel in files_under(top, notes)]
        elif top.is_file():
            found.append((top, top.name))
    progress = Progress("copying the files", sum(_size(path) for path, _ in found), show=show_progress)
    entries = []
    for path, rel in found:
        try:
            entries.append(Entry(rel, *copy_file(path, work / rel, progress)))
        except FileNotFoundError:
            if path.exists():  # the copy's side failed
                raise
            # Removed since it was listed (a refused upload, a deleted slide): not part of the data now.
    progress.end()
    return entries


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_manifest(work: Path, manifest: Manifest) -> None:
    # Written last: a folder with a manifest holds everything the manifest lists.
    partial = work / f"{MANIFEST}.partial"
    with os.fdopen(
        os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
    ) as out:
        out.write(manifest.to_json() + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.rename(partial, work / MANIFEST)


def _reason(exc: OSError) -> str:
    """An OSError in words an operator can act on."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the disk is full{where}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}"
    if exc.errno == errno.EROFS:
        return f"the disk is read-only{where}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # EEXIST: from making DEST's parent folders
        return f"a file stands where a folder must be{where}"
    return f"{exc.strerror or exc}{where}"
