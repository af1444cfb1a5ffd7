"""Login sessions, kept in the store (table ``admin_sessions``).

A session is a random token handed to the browser in an HttpOnly cookie, or to an API client
in the answer of ``POST /api/login``; the store keeps only its SHA-256, so reading the database
gives no way in. It ends ``session_lifetime_min`` after login whatever happens, or after
``session_idle_min`` without use. Each session carries its own CSRF token, which the UI puts in
its forms and which a cookie-authenticated API call must send back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from gateway.admin.permissions import Role
from gateway.store.database import write_transaction

# last_seen is written at most this often, so reading a page is not a write each time.
_TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    role: Role
    csrf_token: str
    expires_ts_ms: int


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str
    expires_ts_ms: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        lifetime_ms: int,
        idle_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self._db = db
        self._lifetime_ms = lifetime_ms
        self._idle_ms = idle_ms
        self._clock = clock

    async def create(self, username: str) -> NewSession:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self._clock()
        expires = now + self._lifetime_ms
        async with write_transaction(self._db, "starting an admin session"):
            # Ended sessions go when a new one starts: the table stays as small as the logins.
            await self._db.execute(
                "DELETE FROM admin_sessions WHERE expires_ts_ms <= ? OR last_seen_ts_ms <= ?",
                (now, now - self._idle_ms),
            )
            await self._db.execute(
                "INSERT INTO admin_sessions (token_sha256, username, csrf_token, created_ts_ms,"
                " last_seen_ts_ms, expires_ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (_digest(token), username, csrf, now, now, expires),
            )
        return NewSession(token, csrf, expires)

    async def lookup(self, token: str) -> Session | None:
        """The live session of ``token`` whose account is enabled, else ``None``."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        async with self._db.execute(
            "SELECT s.username, a.role, s.csrf_token, s.expires_ts_ms, s.last_seen_ts_ms"
            " FROM admin_sessions s JOIN accounts a ON a.username = s.username"
            " WHERE s.token_sha256 = ? AND a.disabled = 0",
            (digest,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        now = self._clock()
        expires, last_seen = int(row[3]), int(row[4])
        if now >= expires or now - last_seen >= self._idle_ms:
            await self.end(token)
            return None
        if now - last_seen >= _TOUCH_EVERY_MS:
            async with write_transaction(self._db, "refreshing an admin session"):
                await self._db.execute(
                    "UPDATE admin_sessions SET last_seen_ts_ms = ? WHERE token_sha256 = ?",
                    (now, digest),
                )
        return Session(str(row[0]), Role(str(row[1])), str(row[2]), expires)

    async def end(self, token: str) -> None:
        async with write_transaction(self._db, "ending an admin session"):
            await self._db.execute(
                "DELETE FROM admin_sessions WHERE token_sha256 = ?", (_digest(token),)
            )
