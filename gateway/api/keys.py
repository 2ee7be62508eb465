"""API keys: `pgw_<key id>_<secret>`. Only a hash of the secret is stored.

The key id finds the row; the secret's hash is compared in constant time, so timing
tells an attacker nothing about how much of a guess was right.

Every API request checks its key. A row read is kept for `CACHE_SECONDS` (keyed by the
Database, so tests and processes never share it): a revocation made in this process is
seen at once, one made by another process (the CLI, another gateway) within that time.
Requests that find the row missing or stale together share one read: under load, every
request in flight when the second ends would otherwise read it again (profiled: nearly a
read per event at 50 clients, each a reader transaction competing with the writer).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.api.scopes import SCOPES  # noqa: F401 (keys.SCOPES, as callers know it)
from gateway.store.database import Database
from gateway.store.models import ApiKey

CACHE_SECONDS = 1.0
CACHE_ENTRIES = 1024  # key rows kept at most: only existing keys are cached, so this is plenty
# Per Database: key id -> (read at, monotonic; secret hash; what the row says).
_cache: weakref.WeakKeyDictionary[Database, dict[str, tuple[float, str, KeyInfo]]] = weakref.WeakKeyDictionary()
# Per Database: key id -> the read in flight, which every request that needs the row awaits.
_reading: weakref.WeakKeyDictionary[Database, dict[str, asyncio.Future[ApiKey | None]]] = weakref.WeakKeyDictionary()

PREFIX = "pgw"
MAX_SOURCE = 500  # characters: a CloudEvents source is stored in a column of this size


class KeyRefused(Exception):
    """A key operation was refused; the message says why."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None
    sources: frozenset[str] | None = None  # the CloudEvents sources it may post as; None: any
    last_used_at: datetime | None = None  # to the minute (gateway.api.key_usage)

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def allows_source(self, source: str) -> bool:
        """Bound keys post only as their own sources, so one upstream cannot take another's
        (source, id) pairs and have the real events refused as conflicts."""
        return self.sources is None or source in self.sources


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.name, frozenset(row.scopes.split(",")), row.created_at, row.revoked_at,
                   frozenset(row.sources) if row.sources is not None else None, row.last_used_at)


def _hash(secret: str) -> str:
    # The secret is 256 random bits: a plain SHA-256 is enough (no dictionary to slow down).
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise KeyRefused(f"unknown scope {unknown[0]!r}; expected some of {', '.join(SCOPES)}" if unknown
                        else f"expected at least one scope of {', '.join(SCOPES)}")
    return scopes


def parse_sources(text: str) -> list[str]:
    """'urn:a,urn:b' -> ['urn:a', 'urn:b']: the CloudEvents sources a key is bound to."""
    sources = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not sources:
        raise KeyRefused("expected at least one source, e.g. --sources urn:acme:crm")
    too_long = next((s for s in sources if len(s) > MAX_SOURCE), None)
    if too_long is not None:
        raise KeyRefused(f"a source has at most {MAX_SOURCE} characters: {too_long[:40]!r}...")
    return sources


async def create_key(db: Database, name: str, scopes: list[str], *, now: datetime,
                     sources: list[str] | None = None) -> str:
    """Store a new key and return it whole: the only time it is ever seen. With `sources`, the
    key may post events only as those CloudEvents sources."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    try:
        async with db.write() as session:
            session.add(ApiKey(name=name, key_id=key_id, secret_hash=_hash(secret), scopes=",".join(scopes),
                               created_at=now, sources=sources))
    except IntegrityError:
        raise KeyRefused(f"a key named {name!r} exists already") from None
    return f"{PREFIX}_{key_id}_{secret}"


async def verify(db: Database, presented: str) -> KeyInfo | None:
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret:
        return None
    cached = _cache.setdefault(db, {})
    entry = cached.get(key_id)
    if entry is None or time.monotonic() - entry[0] > CACHE_SECONDS:
        row = await _read_once(db, key_id)
        if row is None:
            return None  # not cached: unknown ids are what a guesser sends, and they must not fill memory
        if len(cached) >= CACHE_ENTRIES:
            cached.clear()
        entry = cached[key_id] = (time.monotonic(), row.secret_hash, _info(row))
    _, secret_hash, info = entry
    if not hmac.compare_digest(secret_hash, _hash(secret)) or info.revoked_at is not None:
        return None
    return info


async def _read_once(db: Database, key_id: str) -> ApiKey | None:
    """The key's row, read once for every request that asks while the read is in flight."""
    reading = _reading.setdefault(db, {})
    future = reading.get(key_id)
    if future is None:
        future = reading[key_id] = asyncio.ensure_future(
            db.query(lambda session: session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))))
        future.add_done_callback(lambda _: reading.pop(key_id, None))
    return await asyncio.shield(future)  # one waiter going away must not cancel the others' read


async def list_keys(db: Database) -> list[KeyInfo]:
    async with db.read() as session:
        rows = (await session.scalars(select(ApiKey).order_by(ApiKey.name))).all()
    return [_info(r) for r in rows]


async def revoke(db: Database, name: str, *, now: datetime) -> None:
    async with db.write() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.name == name))
        if row is None:
            raise KeyRefused(f"no key named {name!r}")
        if row.revoked_at is None:
            row.revoked_at = now
    _cache.pop(db, None)  # this process sees the revocation at once


async def count_keys(db: Database) -> int:
    async with db.read() as session:
        return (await session.scalar(select(func.count()).select_from(ApiKey))) or 0
