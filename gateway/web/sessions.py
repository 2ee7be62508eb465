"""Console sessions: sign in with an API key, a random cookie, its SHA-256 in the database.

A session lasts `console.session_ttl` from sign-in; it ends earlier at sign-out or when its key
is revoked (the key is read again at every request, with its scopes). "Now" is the runtime's
clock, passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from gateway.api import key_usage, keys
from gateway.store.console_models import ConsoleSession
from gateway.store.database import Database
from gateway.store.models import ApiKey

COOKIE = "pgw_console"
SIGN_IN_COOKIE = "pgw_console_signin"  # the sign-in form's own CSRF token, before any session exists
SIGN_IN_SCOPES = ("console", "admin")


@dataclass(frozen=True)
class Session:
    key_name: str
    scopes: frozenset[str]
    csrf: str
    expires_at: datetime

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


async def sign_in(db: Database, presented: str, *, now: datetime, ttl: float) -> tuple[str, Session] | None:
    """A new session for a key that may sign in (scope console or admin), or None: a wrong key,
    a revoked one and one without the scope are told apart by no one but the log."""
    key = await keys.verify(db, presented.strip())
    if key is None or not any(s in key.scopes for s in SIGN_IN_SCOPES):
        return None
    await key_usage.note_use(db, key, now)
    token, csrf = new_token(), new_token()
    expires = now + timedelta(seconds=ttl)
    async with db.write() as session:
        session.add(ConsoleSession(token_hash=_hash(token), key_name=key.name, csrf=csrf, created_at=now,
                                   expires_at=expires))
    return token, Session(key.name, key.scopes, csrf, expires)


async def find(db: Database, token: str | None, *, now: datetime) -> Session | None:
    if not token or len(token) > 100:
        return None
    async with db.read() as session:
        row = (await session.execute(
            select(ConsoleSession.csrf, ConsoleSession.expires_at, ApiKey.name, ApiKey.scopes)
            .join(ApiKey, ApiKey.name == ConsoleSession.key_name)
            .where(ConsoleSession.token_hash == _hash(token), ConsoleSession.ended_at.is_(None),
                   ConsoleSession.expires_at > now, ApiKey.revoked_at.is_(None)))).first()
    if row is None:
        return None
    scopes = frozenset(row.scopes.split(","))
    if not any(s in scopes for s in SIGN_IN_SCOPES):  # the key lost the scope since
        return None
    return Session(row.name, scopes, row.csrf, row.expires_at)


async def sign_out(db: Database, token: str | None, *, now: datetime) -> None:
    if not token:
        return
    async with db.write() as session:
        await session.execute(update(ConsoleSession).where(
            ConsoleSession.token_hash == _hash(token), ConsoleSession.ended_at.is_(None)).values(ended_at=now))
