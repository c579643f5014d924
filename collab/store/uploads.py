"""Slide uploads in progress, and slides that belong to no case yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.store.database import Row, new_id, now_iso
from collab.store.errors import INTEGRITY_ERRORS

if TYPE_CHECKING:
    from collab.store.database import Database

# An upload nobody has added to for this long is abandoned: its partial file is removed.
UPLOAD_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Upload:
    """A resumable upload; the bytes received so far live in a file named by ``id``."""

    id: str
    user_id: int
    case_id: str | None
    filename: str
    length: int  # bytes the finished file will have
    state: str  # receiving, done, refused
    slide_id: str | None  # the registered slide (or the unassigned slide) once done
    refusal: str | None
    created: str
    expires: str


@dataclass(frozen=True)
class UnassignedSlide:
    """A slide file of an organisation that is not yet part of a case; ``path`` stays on the server."""

    id: str
    org_id: int
    path: str
    source: str  # upload, import
    filename: str
    width: int | None
    height: int | None
    vendor: str | None
    barcode: str | None
    has_label: bool
    refusal: str | None  # set for an imported file that is not a readable slide
    added: str
    attached_slide: str | None


def _expiry() -> str:
    return (datetime.now(UTC) + UPLOAD_LIFETIME).isoformat(timespec="seconds")


class Uploads:
    """Uploads and unassigned slides."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- uploads --------------------------------------------------------------

    async def create(self, user_id: int, case_id: str | None, filename: str, length: int) -> Upload:
        upload = Upload(
            new_id(), user_id, case_id, filename, length, "receiving", None, None, now_iso(), _expiry()
        )
        await self.db.write(
            "INSERT INTO uploads (id, user_id, case_id, filename, length, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (upload.id, user_id, case_id, filename, length, upload.created, upload.expires),
        )
        return upload

    async def get(self, upload_id: str) -> Upload | None:
        row = await self.db.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return _upload(row) if row else None

    async def touch(self, upload_id: str) -> None:
        """Received more: the upload lives another full lifetime."""
        await self.db.write("UPDATE uploads SET expires = ? WHERE id = ?", (_expiry(), upload_id))

    async def finish(
        self, upload_id: str, *, slide_id: str | None = None, refusal: str | None = None
    ) -> None:
        state = "refused" if refusal else "done"
        await self.db.write(
            "UPDATE uploads SET state = ?, slide_id = ?, refusal = ? WHERE id = ?",
            (state, slide_id, refusal, upload_id),
        )

    async def delete(self, upload_id: str) -> None:
        await self.db.write("DELETE FROM uploads WHERE id = ?", (upload_id,))

    async def expired(self) -> list[str]:
        """Uploads still receiving whose time is up."""
        rows = await self.db.all(
            "SELECT id FROM uploads WHERE state = 'receiving' AND expires < ?", (now_iso(),)
        )
        return [r["id"] for r in rows]

    # -- unassigned slides ----------------------------------------------------

    async def add_unassigned(
        self,
        org_id: int,
        path: str,
        *,
        source: str,
        file_size: int,
        mtime_ns: int,
        filename: str,
        width: int | None = None,
        height: int | None = None,
        vendor: str | None = None,
        barcode: str | None = None,
        has_label: bool = False,
        refusal: str | None = None,
    ) -> UnassignedSlide | None:
        """Remember a slide file; None if this very file (path, size, mtime) is already known."""
        record = UnassignedSlide(
            new_id(),
            org_id,
            path,
            source,
            filename,
            width,
            height,
            vendor,
            barcode,
            has_label,
            refusal,
            now_iso(),
            None,
        )
        try:
            await self.db.write(
                "INSERT INTO unassigned_slides (id, org_id, path, source, file_size, mtime_ns, filename,"
                " width, height, vendor, barcode, has_label, refusal, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id, org_id, path, source, file_size, mtime_ns, filename, width, height,
                    vendor, barcode, int(has_label), refusal, record.added,
                ),
            )  # fmt: skip
        except INTEGRITY_ERRORS:
            return None
        return record

    async def known_files(self) -> set[tuple[str, int, int]]:
        """(path, size, mtime_ns) of every file ever imported or refused."""
        rows = await self.db.all("SELECT path, file_size, mtime_ns FROM unassigned_slides")
        return {(r["path"], r["file_size"], r["mtime_ns"]) for r in rows}

    async def unassigned(self, slide_id: str) -> UnassignedSlide | None:
        row = await self.db.one("SELECT * FROM unassigned_slides WHERE id = ?", (slide_id,))
        return _unassigned(row) if row else None

    async def unassigned_of_org(self, org_id: int) -> list[UnassignedSlide]:
        """The organisation's slides still waiting for a case (readable or refused), oldest first."""
        rows = await self.db.all(
            "SELECT * FROM unassigned_slides WHERE org_id = ? AND attached_slide IS NULL"
            " ORDER BY added, rowid",
            (org_id,),
        )
        return [_unassigned(r) for r in rows]

    async def mark_attached(self, unassigned_id: str, slide_id: str) -> bool:
        """Record that the slide now belongs to a case; False if it already did."""
        cursor = await self.db.conn.execute(
            "UPDATE unassigned_slides SET attached_slide = ? WHERE id = ? AND attached_slide IS NULL",
            (slide_id, unassigned_id),
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1


def _upload(row: Row) -> Upload:
    return Upload(
        row["id"], row["user_id"], row["case_id"], row["filename"], row["length"], row["state"],
        row["slide_id"], row["refusal"], row["created"], row["expires"],
    )  # fmt: skip


def _unassigned(row: Row) -> UnassignedSlide:
    return UnassignedSlide(
        row["id"], row["org_id"], row["path"], row["source"], row["filename"], row["width"], row["height"],
        row["vendor"], row["barcode"], bool(row["has_label"]), row["refusal"], row["added"],
        row["attached_slide"],
    )  # fmt: skip
