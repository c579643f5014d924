"""What a data dir holds, and the lock that tells a restore whether anything is using it.

Every ``collab`` command, the server included, holds a shared lock on ``DATA_DIR/collab.lock``
while it runs; ``collab restore`` takes it exclusively, so it refuses while anything else has
the data dir open. The lock is ``flock(2)``: the kernel drops it when the process ends, however
it ends (kill -9 included), so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

DATABASE = "collab.sqlite3"
LOCK = "collab.lock"
# Where ``collab restore`` keeps the data it replaced, and builds the data it puts in place.
KEPT_ASIDE_PREFIX = "before-restore-"
STAGING_PREFIX = ".restore-"

# Never copied into a backup: the database's own journal files (the database is copied whole
# through SQLite's backup API), the lock, and partial browser uploads (the browser still has the
# file, and an upload whose part is missing resumes from its first byte).
NOT_BACKED_UP = frozenset(
    {DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal", LOCK, "uploads"}
)


class DataDirError(Exception):
    """The data dir cannot be used; the message is fit to show an operator."""


class DataDirBusy(DataDirError):
    """Something else (a server, another command) is using the data dir."""


def backed_up(name: str) -> bool:
    """Whether a top-level entry of the data dir goes into a backup beside the database."""
    return name not in NOT_BACKED_UP and not name.startswith((KEPT_ASIDE_PREFIX, STAGING_PREFIX))


def _open_lock(data_dir: Path) -> int:
    path = data_dir / LOCK
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Readable by all and locked through a read-only descriptor when need be: a command run
            # as another account (a backup as root, say) never leaves a lock the server cannot open.
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise DataDirError(f"cannot use the data dir {data_dir}: {exc.strerror} ({exc.filename})") from exc


@contextlib.contextmanager
def shared(data_dir: Path) -> Iterator[None]:
    """Hold the data dir as one of its users (a server, a command) until the block ends."""
    fd = _open_lock(data_dir)
    try:
        # Blocks only while a restore runs (a few seconds): then the command sees the restored data.
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data dir alone; DataDirBusy at once if anything else holds it."""
    fd = _open_lock(data_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirBusy(
                    f"{data_dir} is in use by a running collab server (or another collab command);"
                    " stop it, then restore"
                ) from None
            raise
        yield
    finally:
        os.close(fd)
