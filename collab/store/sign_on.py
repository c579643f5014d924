"""Single sign-on as the database keeps it: sign-ins under way, and provider identities.

A sign-in under way is found by its ``state`` (kept as a hash) and belongs to the browser that
began it (the hash of a random cookie). Taking it deletes it, in one statement: a state that
comes back a second time finds nothing, whichever server process it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collab.security import token_hash
from collab.store.database import now_iso

if TYPE_CHECKING:
    from collab.store.database import Database

# Long enough to type a password and answer a second factor at the trust's sign-in page.
FLOW_LIFETIME = timedelta(minutes=10)
# Beginning a sign-in needs no account, so its rows are bounded: a region's staff signing in
# at 9 o'clock is a few thousand in ten minutes; past this, new ones wait (503).
MAX_PENDING = 20_000


@dataclass(frozen=True)
class Flow:
    provider: str
    nonce: str
    verifier: str  # the PKCE code verifier: never leaves the server until the code exchange
    next: str


class SignOn:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def begin(self, state: str, browser: str, flow: Flow) -> bool:
        """Keep a new sign-in; False (nothing kept) when too many are under way."""
        expires = (datetime.now(UTC) + FLOW_LIFETIME).isoformat(timespec="seconds")
        await self.db.write("DELETE FROM oidc_flows WHERE expires < ?", (now_iso(),))
        pending = await self.db.one("SELECT count(*) FROM oidc_flows")
        if pending is not None and pending[0] >= MAX_PENDING:
            return False
        await self.db.write(
            "INSERT INTO oidc_flows (state_hash, browser_hash, provider, nonce, verifier, next, expires)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                token_hash(state),
                token_hash(browser),
                flow.provider,
                flow.nonce,
                flow.verifier,
                flow.next,
                expires,
            ),
        )
        return True

    async def take(self, state: str, browser: str) -> Flow | None:
        """The sign-in this state began in this browser, once; None if unknown, used, expired
        or begun in another browser."""
        row = await self.db.one(
            "DELETE FROM oidc_flows WHERE state_hash = ? RETURNING browser_hash, provider, nonce, verifier,"
            " next, expires",
            (token_hash(state),),
        )
        await self.db.conn.commit()
        if row is None or row["expires"] < now_iso() or row["browser_hash"] != token_hash(browser):
            return None
        return Flow(row["provider"], row["nonce"], row["verifier"], row["next"])

    async def user_id(self, issuer: str, subject: str) -> int | None:
        row = await self.db.one(
            "SELECT user_id FROM oidc_identities WHERE issuer = ? AND subject = ?", (issuer, subject)
        )
        return int(row["user_id"]) if row else None

    async def link(self, issuer: str, subject: str, user_id: int) -> None:
        await self.db.write(
            "INSERT INTO oidc_identities (issuer, subject, user_id, created) VALUES (?, ?, ?, ?)",
            (issuer, subject, user_id, now_iso()),
        )
