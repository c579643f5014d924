"""``collab restore SRC``: put a backup (collab.backup) back into a data dir.

Nothing in the data dir is touched until the whole backup has been checked: its manifest, every
file's size and SHA-256, the database's integrity and schema version. Then, with the data dir
locked against every other collab process, the backup is copied into a staging folder inside the
data dir (and checked again as it is copied), what the data dir held is moved, never deleted,
into ``before-restore-<time>``, and the staged files are renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

from collab import datadir
from collab.backup import (
    MANIFEST,
    BackupError,
    Manifest,
    Progress,
    copy_file,
    file_digest,
    files_under,
    fsync_dir,
    fsync_dirs,
    utc_now,
)
from collab.datadir import DATABASE, KEPT_ASIDE_PREFIX, LOCK, STAGING_PREFIX
from collab.store.migrations import MIGRATIONS


def check_backup(src: Path, *, show_progress: bool = False) -> Manifest:
    """The manifest of the backup in ``src`` once all of it checks out; BackupError saying why not."""
    if not src.is_dir():
        raise BackupError(f"{src} is not a backup folder (one made by collab backup)")
    try:
        text = (src / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(
            f"{src} has no {MANIFEST}: it is not a complete collab backup (an interrupted one has none)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"cannot read {src / MANIFEST}: {exc}") from None
    try:
        manifest = Manifest.from_json(text)
    except ValueError as exc:
        raise BackupError(f"{src / MANIFEST} is damaged or was edited: {exc}; nothing was restored") from None
    if manifest.schema > len(MIGRATIONS):
        raise BackupError(
            f"the backup in {src} was taken by a newer collab (collab {manifest.collab_version}, schema"
            f" {manifest.schema}; this one knows up to {len(MIGRATIONS)}): restore it with that version"
        )
    listed = {entry.path for entry in manifest.files}
    present = {rel for _, rel in files_under(src)} - {MANIFEST}
    if present - listed:
        raise BackupError(
            f"{src} holds files its manifest does not list ({sorted(present - listed)[0]}): it was changed"
            " after the backup; nothing was restored"
        )
    if listed - present:
        raise BackupError(
            f"{src} lacks {sorted(listed - present)[0]}, which its manifest lists: the backup is incomplete;"
            " nothing was restored"
        )
    progress = Progress("checking the backup", sum(e.bytes for e in manifest.files), show=show_progress)
    try:
        for entry in manifest.files:
            path = src / entry.path
            if path.stat().st_size != entry.bytes or file_digest(path, progress)[1] != entry.sha256:
                raise BackupError(
                    f"{path} does not match its checksum in {MANIFEST}: the backup is damaged"
                    " or was changed; nothing was restored"
                )
    except OSError as exc:
        raise BackupError(f"cannot read the backup: {exc.strerror} ({exc.filename})") from None
    finally:
        progress.end()
    _check_database(src / DATABASE, manifest.schema)
    return manifest


def _check_database(path: Path, schema: int) -> None:
    # immutable: read without locks or a -shm file, so a backup on read-only media can be checked.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a sound database ({exc}); nothing was restored") from None
    finally:
        conn.close()
    if problems != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check ({problems[0]}); nothing was restored")
    if found != schema:
        raise BackupError(
            f"{path} is at schema {found} but its manifest says {schema}: the backup was changed;"
            " nothing was restored"
        )


def restore(src: Path, data_dir: Path, *, show_progress: bool = False) -> tuple[Manifest, Path | None]:
    """Put the backup in ``src`` into ``data_dir``; returns its manifest and where the data it
    replaced was kept (None when the data dir held nothing)."""
    manifest = check_backup(src, show_progress=show_progress)
    try:
        with datadir.exclusive(data_dir):
            return manifest, _put_in_place(src, data_dir, manifest, show_progress)
    except datadir.DataDirError as exc:
        raise BackupError(f"{exc}; nothing was restored") from None
    except OSError as exc:
        raise BackupError(f"cannot restore into {data_dir}: {exc.strerror} ({exc.filename})") from exc


def _put_in_place(src: Path, data_dir: Path, manifest: Manifest, show_progress: bool) -> Path | None:
    for stale in data_dir.glob(f"{STAGING_PREFIX}*"):
        # Left by a restore that was killed: only ever a copy of a backup, and we hold the lock.
        shutil.rmtree(stale, ignore_errors=True)
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    staging = data_dir / f"{STAGING_PREFIX}{stamp}"
    aside = data_dir / f"{KEPT_ASIDE_PREFIX}{stamp}"
    if aside.exists():
        raise BackupError(f"{aside} exists already (a restore a moment ago?); try again in a second")
    staging.mkdir(mode=0o700)
    moved: list[tuple[Path, Path]] = []
    try:
        # Inside the data dir, so that the renames below stay on one file system.
        progress = Progress("copying", sum(e.bytes for e in manifest.files), show=show_progress)
        for entry in manifest.files:
            if copy_file(src / entry.path, staging / entry.path, progress) != (entry.bytes, entry.sha256):
                raise BackupError(f"{entry.path} changed while it was being copied; nothing was restored")
        progress.end()
        fsync_dirs(staging)
        current = [p for p in data_dir.iterdir() if _replaced(p.name)]
        if current:
            aside.mkdir(mode=0o700)
        for path in sorted(current):
            os.rename(path, aside / path.name)
            moved.append((path, aside / path.name))
        for path in sorted(staging.iterdir()):
            os.rename(path, data_dir / path.name)
            moved.append((path, data_dir / path.name))
        staging.rmdir()
        fsync_dir(data_dir)
        if current:
            fsync_dir(aside)
    except BaseException:
        # Everything back where it was; the copies in staging go.
        for origin, now in reversed(moved):
            with contextlib.suppress(OSError):
                os.rename(now, origin)
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            aside.rmdir()  # only if empty: if anything is left in it, it stays for the operator
        raise
    return aside if current else None


def _replaced(name: str) -> bool:
    """Whether a data dir entry is moved aside by a restore: all but the lock and restores' folders."""
    return name != LOCK and not name.startswith((KEPT_ASIDE_PREFIX, STAGING_PREFIX))
