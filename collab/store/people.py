"""Users, their sessions and API tokens (only hashes of secrets are stored)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.domain import ROLES, User, may_find
from collab.store.database import Row, StoreError, now_iso
from collab.store.errors import INTEGRITY_ERRORS

if TYPE_CHECKING:
    from collab.store.database import Database


# A token's last use is written at most this often: a viewer's tiles arrive by the hundred a
# second, and the list of tokens needs the day and the minute, not every request.
LAST_USE_RESOLUTION = timedelta(minutes=1)
# The password hash of someone who has none yet (invited): no argon2 hash looks like it, so it
# never verifies, and ``password_hash`` answers such a user as unknown.
NO_PASSWORD = "!"


@dataclass(frozen=True)
class ApiToken:
    """What is known of an API token besides its secret, which is kept only as a hash."""

    id: int
    created: str
    last_used: str | None
    revoked: str | None
    scope: str | None = None  # "read", "write"; None: full rights (tokens made before scopes)
    expires: str | None = None


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
        except INTEGRITY_ERRORS:
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

    async def search(self, viewer: User, text: str, limit: int = 20) -> list[tuple[User, str]]:
        """People whose name, username or organisation contains ``text`` and whom ``viewer`` may
        find (``domain.may_find``, as ``findable``), with their organisation's name; by name."""
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self.db.all(
            "SELECT users.*, organisations.name AS org_name FROM users"
            " JOIN organisations ON organisations.id = users.org_id"
            " WHERE users.display_name LIKE ? ESCAPE '\\' OR users.username LIKE ? ESCAPE '\\'"
            " OR organisations.name LIKE ? ESCAPE '\\' ORDER BY users.display_name, users.username",
            (like, like, like),
        )
        viewer_org = await self.db.catalog.org(viewer.org_id)
        found: list[tuple[User, str]] = []
        for row in rows:
            other = _user(row)
            other_org = await self.db.catalog.org(other.org_id)
            if viewer_org is None or other_org is None or not may_find(viewer, viewer_org, other, other_org):
                continue
            found.append((other, row["org_name"]))
            if len(found) >= limit:
                break
        return found

    async def password_hash(self, username: str) -> tuple[User, str] | None:
        """The user and password hash of someone who may sign in (not deactivated, not still
        invited); None otherwise, as for an unknown username."""
        row = await self.db.one(
            "SELECT * FROM users WHERE username = ? AND deactivated IS NULL AND password_hash != ?",
            (username, NO_PASSWORD),
        )
        return (_user(row), row["password_hash"]) if row else None

    # -- API tokens -----------------------------------------------------------

    async def add_token(
        self, user_id: int, token_hash: str, *, scope: str | None = None, expires: str | None = None
    ) -> int:
        """Store a new token's hash; returns the token's id, which lists and revocation name it by."""
        token_id = await self.db.write(
            "INSERT INTO api_tokens (user_id, token_hash, created, scope, expires) VALUES (?, ?, ?, ?, ?)",
            (user_id, token_hash, now_iso(), scope, expires),
        )
        assert token_id is not None
        return token_id

    async def user_for_token(self, token_hash: str) -> User | None:
        """The owner of a token in force (see ``token_grant``)."""
        grant = await self.token_grant(token_hash)
        return grant[0] if grant else None

    async def token_grant(self, token_hash: str) -> tuple[User, str | None, str | None] | None:
        """The owner, scope and expiry of a token that is neither revoked nor expired, of someone
        not deactivated; notes its use (see LAST_USE_RESOLUTION)."""
        row = await self.db.one(
            "SELECT users.*, api_tokens.id AS token_id, api_tokens.last_used AS last_used,"
            " api_tokens.scope AS scope, api_tokens.expires AS expires"
            " FROM api_tokens JOIN users ON users.id = api_tokens.user_id"
            " WHERE token_hash = ? AND revoked IS NULL AND users.deactivated IS NULL"
            " AND (api_tokens.expires IS NULL OR api_tokens.expires > ?)",
            (token_hash, now_iso()),
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
        return _user(row), row["scope"], row["expires"]

    async def tokens(self, user_id: int) -> list[ApiToken]:
        """A person's tokens, oldest first, revoked ones included (never the token itself)."""
        rows = await self.db.all(
            "SELECT id, created, last_used, revoked, scope, expires FROM api_tokens"
            " WHERE user_id = ? ORDER BY id",
            (user_id,),
        )
        return [ApiToken(*tuple(r)) for r in rows]

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
            " WHERE id_hash = ? AND expires > ? AND users.deactivated IS NULL",
            (id_hash, now_iso()),
        )
        return (_user(row), row["csrf"]) if row else None

    async def session_until(self, id_hash: str) -> tuple[User, datetime] | None:
        """The user of a live session and when it expires (for open connections to end then)."""
        row = await self.db.one(
            "SELECT users.*, sessions.expires AS expires FROM sessions"
            " JOIN users ON users.id = sessions.user_id"
            " WHERE id_hash = ? AND expires > ? AND users.deactivated IS NULL",
            (id_hash, now_iso()),
        )
        return (_user(row), datetime.fromisoformat(row["expires"])) if row else None

    async def end_session(self, id_hash: str) -> None:
        await self.db.write("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def _user(row: Row) -> User:
    return User(row["id"], row["username"], row["display_name"], row["org_id"], row["role"], row["specialty"])
