"""Users, their sessions and API tokens (only hashes of secrets are stored)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.domain import ROLES, User, may_find
from collab.store.database import StoreError, now_iso

if TYPE_CHECKING:
    from collab.store.database import Database


# A token's last use is written at most this often: a viewer's tiles arrive by the hundred a
# second, and the list of tokens needs the day and the minute, not every request.
LAST_USE_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiToken:
    """What is known of an API token besides its secret, which is kept only as a hash."""

    id: int
    created: str
    last_used: str | None
    revoked: str | None


class People:
    """Users, sessions and tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_user(
        self,
        username: str,
        *,
        display_name: str,
        org_id: int,
        role: str,
        password_hash: str,
        specialty: str | None = None,
    ) -> User:
        """Create a user; usernames are unique."""
        username = username.strip()
        if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
            raise StoreError("a username is letters, digits, '.', '-' or '_'")
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}")
        try:
            user_id = await self.db.write(
                "INSERT INTO users (username, display_name, org_id, role, specialty, password_hash, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, display_name or username, org_id, role, specialty, password_hash, now_iso()),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"a user named {username!r} already exists") from None
        assert user_id is not None
        return User(user_id, username, display_name or username, org_id, role, specialty)

    async def user(self, user_id: int) -> User | None:
        row = await self.db.one("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def user_by_username(self, username: str) -> User | None:
        row = await self.db.one("SELECT * FROM users WHERE username = ?", (username,))
        return _user(row) if row else None

    async def findable(self, viewer: User, username: str) -> User | None:
        """The user called ``username`` if ``viewer`` may find them (``domain.may_find``); else None,
        as for a username that does not exist. Every lookup on a person's behalf goes through it."""
        other = await self.user_by_username(username)
        if other is None:
            return None
        viewer_org = await self.db.catalog.org(viewer.org_id)
        other_org = await self.db.catalog.org(other.org_id)
        if viewer_org is None or other_org is None:
            return None
        return other if may_find(viewer, viewer_org, other, other_org) else None

    async def password_hash(self, username: str) -> tuple[User, str] | None:
        row = await self.db.one("SELECT * FROM users WHERE username = ?", (username,))
        return (_user(row), row["password_hash"]) if row else None

    # -- API tokens -----------------------------------------------------------

    async def add_token(self, user_id: int, token_hash: str) -> int:
        """Store a new token's hash; returns the token's id, which lists and revocation name it by."""
        token_id = await self.db.write(
            "INSERT INTO api_tokens (user_id, token_hash, created) VALUES (?, ?, ?)",
            (user_id, token_hash, now_iso()),
        )
        assert token_id is not None
        return token_id

    async def user_for_token(self, token_hash: str) -> User | None:
        """The owner of a token that has not been revoked; notes its use (see LAST_USE_RESOLUTION)."""
        row = await self.db.one(
            "SELECT users.*, api_tokens.id AS token_id, api_tokens.last_used AS last_used"
            " FROM api_tokens JOIN users ON users.id = api_tokens.user_id"
            " WHERE token_hash = ? AND revoked IS NULL",
            (token_hash,),
        )
        if row is None:
            return None
        now = datetime.now(UTC)
        stale = (now - LAST_USE_RESOLUTION).isoformat(timespec="seconds")
        if row["last_used"] is None or row["last_used"] < stale:
            await self.db.write(
                "UPDATE api_tokens SET last_used = ? WHERE id = ?",
                (now.isoformat(timespec="seconds"), row["token_id"]),
            )
        return _user(row)

    async def tokens(self, user_id: int) -> list[ApiToken]:
        """A person's tokens, oldest first, revoked ones included (never the token itself)."""
        rows = await self.db.all(
            "SELECT id, created, last_used, revoked FROM api_tokens WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return [ApiToken(r["id"], r["created"], r["last_used"], r["revoked"]) for r in rows]

    async def revoke_token(self, user_id: int, token_id: int) -> bool:
        """Revoke one of a person's tokens; False if they have no such token still in force."""
        cursor = await self.db.conn.execute(
            "UPDATE api_tokens SET revoked = ? WHERE id = ? AND user_id = ? AND revoked IS NULL",
            (now_iso(), token_id, user_id),
        )
        await self.db.conn.commit()
        return cursor.rowcount == 1

    # -- sessions -------------------------------------------------------------

    async def add_session(self, user_id: int, id_hash: str, csrf: str, lifetime: timedelta) -> None:
        expires = (datetime.now(UTC) + lifetime).isoformat(timespec="seconds")
        await self.db.write(
            "INSERT INTO sessions (id_hash, user_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
            (id_hash, user_id, csrf, now_iso(), expires),
        )

    async def session(self, id_hash: str) -> tuple[User, str] | None:
        """The user and CSRF token of a live session."""
        row = await self.db.one(
            "SELECT users.*, sessions.csrf AS csrf FROM sessions JOIN users ON users.id = sessions.user_id"
            " WHERE id_hash = ? AND expires > ?",
            (id_hash, now_iso()),
        )
        return (_user(row), row["csrf"]) if row else None

    async def session_until(self, id_hash: str) -> tuple[User, datetime] | None:
        """The user of a live session and when it expires (for open connections to end then)."""
        row = await self.db.one(
            "SELECT users.*, sessions.expires AS expires FROM sessions"
            " JOIN users ON users.id = sessions.user_id WHERE id_hash = ? AND expires > ?",
            (id_hash, now_iso()),
        )
        return (_user(row), datetime.fromisoformat(row["expires"])) if row else None

    async def end_session(self, id_hash: str) -> None:
        await self.db.write("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["username"], row["display_name"], row["org_id"], row["role"], row["specialty"])
