"""The ingest baseline without the gateway: a plain aiohttp server, one INSERT and COMMIT per POST.

What the database and aiohttp allow with nothing else in between: no SQLAlchemy, no
validation, no rendering, no group commit. It parses the CloudEvent's JSON (any server
must), writes it into `events` of a migrated database and answers 202. The load
generator (bench/loadgen.py) posts to it exactly as to the gateway.

- SQLite (aiosqlite): one connection, `BEGIN IMMEDIATE; INSERT; COMMIT` per request, in
  turn under a lock (one writer, as SQLite has), WAL and `synchronous=NORMAL` as the gateway.
- PostgreSQL (asyncpg): a pool of the gateway's size, one autocommitted INSERT per
  request: one round trip and one commit.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

import aiosqlite
import asyncpg
from aiohttp import web

PROTOCOL = ("INSERT INTO protocols (number, issued_by, status, subject, profile, consumer_locale, "
            "consumer_timezone, opened_at, received_at, deadline_at, legal_hold, updated_at) "
            "VALUES ('000000000001', 'upstream', 'open', 'bench', 'br-sac', 'pt-BR', 'America/Sao_Paulo', "
            "{now}, {now}, {now}, false, {now}) RETURNING id")
EVENT = ("INSERT INTO events (protocol_id, source, event_id, type, occurred_at, received_at, data, fingerprint, "
         "answer) VALUES ({})")
SQLITE_EVENT = EVENT.format(", ".join("?" * 9))
PG_EVENT = EVENT.format(", ".join(f"${n}" for n in range(1, 10)))
ANSWER = json.dumps({"protocol": {"number": "000000000001", "status": "open"}, "notifications": []})


def _sqlite_now() -> str:
    """UTC, naive, in the text form SQLAlchemy stores on SQLite (store/types.py)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _row(body: bytes) -> tuple[str, str, str, str]:
    event = json.loads(body)
    return event["source"], event["id"], event["type"], json.dumps(event["data"])


class SQLiteServer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = asyncio.Lock()
        self.conn: aiosqlite.Connection | None = None
        self.protocol_id = 0

    async def open(self) -> None:
        self.conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            await self.conn.execute(f"PRAGMA {pragma}")
        now = f"'{_sqlite_now()}'"
        async with self.conn.execute(PROTOCOL.format(now=now)) as cursor:
            self.protocol_id = (await cursor.fetchone())[0]

    async def insert(self, body: bytes) -> None:
        assert self.conn is not None
        source, event_id, kind, data = _row(body)
        now = _sqlite_now()
        async with self.lock:  # one transaction at a time on the one connection
            await self.conn.execute("BEGIN IMMEDIATE")
            await self.conn.execute(SQLITE_EVENT, (self.protocol_id, source, event_id, kind, now, now, data,
                                                   "sha256:-", ANSWER))
            await self.conn.execute("COMMIT")

    async def rows(self) -> int:
        assert self.conn is not None
        async with self.conn.execute("SELECT count(*) FROM events") as cursor:
            return (await cursor.fetchone())[0]

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class PostgresServer:
    def __init__(self, url: str, pool_size: int) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        self.protocol_id = 0

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=self.pool_size, max_size=self.pool_size)
        self.protocol_id = await self.pool.fetchval(PROTOCOL.format(now="now()"))

    async def insert(self, body: bytes) -> None:
        assert self.pool is not None
        source, event_id, kind, data = _row(body)
        now = datetime.now(timezone.utc)
        await self.pool.execute(PG_EVENT, self.protocol_id, source, event_id, kind, now, now, data, "sha256:-",
                                ANSWER)

    async def rows(self) -> int:
        assert self.pool is not None
        return await self.pool.fetchval("SELECT count(*) FROM events")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def make_app(server: SQLiteServer | PostgresServer) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        await server.insert(await request.read())
        return web.Response(status=202, body=ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/events", events)
    return app


async def serve(server: SQLiteServer | PostgresServer, host: str) -> tuple[web.AppRunner, int]:
    await server.open()
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port: Any = runner.addresses[0][1]
    return runner, port
