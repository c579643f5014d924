"""Users, their sessions and API tokens (only hashes of secrets are stored)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.domain import ROLES, User
from collab.store.database import StoreError, now_iso

if TYPE_CHECKING:
    from collab.store.database import Database


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

    async def password_hash(self, username: str) -> tuple[User, str] | None:
        row = await self.db.one("SELECT * FROM users WHERE username = ?", (username,))
        return (_user(row), row["password_hash"]) if row else None

    # -- API tokens -----------------------------------------------------------

    async def add_token(self, user_id: int, token_hash: str) -> None:
        await self.db.write(
            "INSERT INTO api_tokens (user_id, token_hash, created) VALUES (?, ?, ?)",
            (user_id, token_hash, now_iso()),
        )

    async def user_for_token(self, token_hash: str) -> User | None:
        row = await self.db.one(
            "SELECT users.* FROM api_tokens JOIN users ON users.id = api_tokens.user_id WHERE token_hash = ?",
            (token_hash,),
        )
        return _user(row) if row else None

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

    async def end_session(self, id_hash: str) -> None:
        await self.db.write("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["username"], row["display_name"], row["org_id"], row["role"], row["specialty"])
