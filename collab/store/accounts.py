"""Accounts as administrators keep them: details, deactivation, invitations and passwords.

``People`` (collab.store.people) answers who is signed in; this module changes accounts. Every
secret is kept as a hash only: argon2 for passwords (hashed by the caller, off the event loop),
SHA-256 for invitation tokens, which are random.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.domain import ROLES, SPECIALTIES, Organisation, User
from collab.security import MIN_PASSWORD_LENGTH
from collab.store.database import Row, StoreError, now_iso
from collab.store.people import NO_PASSWORD, _user

if TYPE_CHECKING:
    from collab.store.database import Database

# An invitation is passed on by hand (email, a message): a week covers a weekend and leave.
INVITE_LIFETIME = timedelta(days=7)
TOKEN_SCOPES = ("read", "write")
MAX_TOKEN_DAYS = 366
MAX_NAME_LENGTH = 100
# argon2 hashes what it is given, however long: a bound keeps one request from costing much.
MAX_PASSWORD_LENGTH = 1000


@dataclass(frozen=True)
class Account:
    """A user as the administration page lists them."""

    user: User
    organisation: str
    created: str
    deactivated: str | None
    invited: bool  # no password yet: waiting for them to open their invitation
    invite_expires: str | None  # their newest unused invitation's expiry, if any

    @property
    def status(self) -> str:
        """ "active", "invited" or "deactivated" (a sign-in lock lives in the server's memory)."""
        if self.deactivated:
            return "deactivated"
        return "invited" if self.invited else "active"


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must be at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password must be at most {MAX_PASSWORD_LENGTH} characters."
    return None


def check_details(display_name: str | None, role: str | None, specialty: str | None) -> None:
    """Refuse details no account may have (a StoreError to show)."""
    if display_name is not None and not 1 <= len(display_name.strip()) <= MAX_NAME_LENGTH:
        raise StoreError(f"The name must be 1 to {MAX_NAME_LENGTH} characters.")
    if role is not None and role not in ROLES:
        raise StoreError(f"The role must be one of: {', '.join(ROLES)}.")
    if specialty is not None and specialty not in SPECIALTIES:
        raise StoreError(f"The specialty must be one of: {', '.join(SPECIALTIES)}, or none.")


def token_expiry(days: int | None) -> str | None:
    """When a token made now for ``days`` days ends (None: it does not)."""
    if days is None:
        return None
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise StoreError(f"A token lasts 1 to {MAX_TOKEN_DAYS} days.")
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")


class Accounts:
    """Changes to accounts; stateless, so made wherever needed: ``Accounts(db)``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def accounts(self) -> list[Account]:
        """Everyone, by name."""
        rows = await self.db.all(
            _ACCOUNT_SQL + " ORDER BY users.display_name COLLATE NOCASE, users.id", (now_iso(),)
        )
        return [_account(row) for row in rows]

    async def organisations(self) -> list[Organisation]:
        """Every organisation (trust), by name, for choosing one."""
        rows = await self.db.all("SELECT id, name, network FROM organisations ORDER BY name COLLATE NOCASE")
        return [Organisation(*tuple(row)) for row in rows]

    async def account(self, user_id: int) -> Account | None:
        row = await self.db.one(_ACCOUNT_SQL + " WHERE users.id = ?", (now_iso(), user_id))
        return _account(row) if row else None

    async def create(
        self,
        username: str,
        *,
        display_name: str,
        org_id: int,
        role: str,
        specialty: str | None,
        password_hash: str | None,
    ) -> User:
        """A new account; without a password hash it waits for its invitation to be opened."""
        check_details(display_name, role, specialty)
        if len(username) > MAX_NAME_LENGTH:
            raise StoreError(f"The username must be at most {MAX_NAME_LENGTH} characters.")
        return await self.db.people.add_user(
            username,
            display_name=display_name.strip(),
            org_id=org_id,
            role=role,
            specialty=specialty,
            password_hash=password_hash or NO_PASSWORD,
        )

    async def update(
        self,
        user_id: int,
        *,
        display_name: str | None = None,
        org_id: int | None = None,
        role: str | None = None,
        specialty: str | None = None,
        clear_specialty: bool = False,
    ) -> None:
        """Change the given details (None: unchanged; ``clear_specialty`` removes it)."""
        check_details(display_name, role, specialty)
        await self.db.write(
            "UPDATE users SET display_name = COALESCE(?, display_name), org_id = COALESCE(?, org_id),"
            " role = COALESCE(?, role),"
            " specialty = CASE WHEN ? <> 0 THEN NULL ELSE COALESCE(?, specialty) END"
            " WHERE id = ?",
            (
                display_name.strip() if display_name else None,
                org_id,
                role,
                clear_specialty,
                specialty,
                user_id,
            ),
        )

    async def deactivate(self, user_id: int) -> list[str] | None:
        """Stop the account: its sessions are deleted (returned, as id hashes, for their open
        connections to be closed), its API tokens revoked and its invitations voided, so that a
        later reactivation does not bring back a token someone may have kept. None if it was
        deactivated already."""
        at = now_iso()
        cursor = await self.db.conn.execute(
            "UPDATE users SET deactivated = ? WHERE id = ? AND deactivated IS NULL", (at, user_id)
        )
        if cursor.rowcount != 1:
            await self.db.conn.commit()
            return None
        await self.db.conn.execute(
            "UPDATE api_tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL", (at, user_id)
        )
        await self.db.conn.execute("DELETE FROM invites WHERE user_id = ? AND used IS NULL", (user_id,))
        return await self._end_sessions(user_id, keep=None)

    async def reactivate(self, user_id: int) -> bool:
        """Let the account sign in again (with its password; tokens made before are revoked);
        False if it was active."""
        cursor = await self.db.conn.execute(
            "UPDATE users SET deactivated = NULL WHERE id = ? AND deactivated IS NOT NULL", (user_id,)
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    async def set_password(self, user_id: int, password_hash: str, *, keep_session: str | None) -> list[str]:
        """A new password (and no invitation still open); every session but ``keep_session`` ends.
        Returns the ended sessions' id hashes."""
        await self.db.conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )
        await self.db.conn.execute("DELETE FROM invites WHERE user_id = ? AND used IS NULL", (user_id,))
        return await self._end_sessions(user_id, keep=keep_session)

    async def current_password_hash(self, user_id: int) -> str | None:
        row = await self.db.one("SELECT password_hash FROM users WHERE id = ?", (user_id,))
        return row["password_hash"] if row and row["password_hash"] != NO_PASSWORD else None

    async def invite(self, user_id: int, token_hash: str, *, by: int | None) -> tuple[str, list[str]]:
        """A new invitation (earlier unused ones void); the account's password stops working and
        its sessions end, so that only whoever opens the link gets in. Returns the expiry and the
        ended sessions' id hashes."""
        expires = (datetime.now(UTC) + INVITE_LIFETIME).isoformat(timespec="seconds")
        await self.db.conn.execute("DELETE FROM invites WHERE user_id = ? AND used IS NULL", (user_id,))
        await self.db.conn.execute(
            "INSERT INTO invites (user_id, token_hash, created, expires, created_by) VALUES (?, ?, ?, ?, ?)",
            (user_id, token_hash, now_iso(), expires, by),
        )
        await self.db.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (NO_PASSWORD, user_id))
        return expires, await self._end_sessions(user_id, keep=None)

    async def invited(self, token_hash: str) -> User | None:
        """Whose invitation this is, if it is unused, unexpired and their account active."""
        row = await self.db.one(
            "SELECT users.* FROM invites JOIN users ON users.id = invites.user_id"
            " WHERE token_hash = ? AND used IS NULL AND expires > ? AND users.deactivated IS NULL",
            (token_hash, now_iso()),
        )
        return _user(row) if row else None

    async def accept_invite(self, token_hash: str, password_hash: str) -> User | None:
        """Use the invitation (once) to set the password; None if it is not valid (any more)."""
        row = await self.db.one(
            "UPDATE invites SET used = ? WHERE token_hash = ? AND used IS NULL AND expires > ?"
            " AND user_id IN (SELECT id FROM users WHERE deactivated IS NULL) RETURNING user_id",
            (now_iso(), token_hash, now_iso()),
        )
        if row is None:
            await self.db.conn.commit()
            return None
        await self.db.conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, row["user_id"])
        )
        await self.db.conn.commit()
        return await self.db.people.user(row["user_id"])

    async def _end_sessions(self, user_id: int, *, keep: str | None) -> list[str]:
        """Delete the person's sessions but ``keep``, commit, and return the deleted id hashes."""
        rows = await self.db.all(
            "DELETE FROM sessions WHERE user_id = ? AND id_hash IS NOT ? RETURNING id_hash", (user_id, keep)
        )
        await self.db.conn.commit()
        return [row["id_hash"] for row in rows]


_ACCOUNT_SQL = (
    "SELECT users.*, organisations.name AS organisation,"
    " (SELECT MAX(expires) FROM invites WHERE invites.user_id = users.id AND used IS NULL AND expires > ?)"
    " AS invite_expires FROM users JOIN organisations ON organisations.id = users.org_id"
)


def _account(row: Row) -> Account:
    return Account(
        _user(row),
        row["organisation"],
        row["created"],
        row["deactivated"],
        row["password_hash"] == NO_PASSWORD,
        row["invite_expires"],
    )
