"""Fresh, migrated databases for each measurement, cloned from a template.

A round must not find the previous round's rows: a bigger table or a WAL file left to
checkpoint would tilt the comparison. SQLite clones by copying a file, PostgreSQL with
`CREATE DATABASE ... TEMPLATE` (as the test suite does).
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench.progress import say
from gateway.store.database import Database
from gateway.store.migrate import migrate

Fill = Callable[[str], Awaitable[None]]


async def _migrated(url: str, fill: Fill | None) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    if fill is not None:
        await fill(url)


class SQLiteStore:
    name = "sqlite"

    async def describe(self) -> dict[str, str]:
        return {"journal_mode": "WAL", "synchronous": "NORMAL (the gateway's default)"}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._n = itertools.count()

    def _url(self, path: Path) -> str:
        return f"sqlite+aiosqlite:///{path}"

    async def template(self, label: str, fill: Fill | None = None) -> str:
        path = self.folder / f"template-{label}.db"
        await _migrated(self._url(path), fill)
        return self._url(path)

    async def clone(self, template: str) -> str:
        source = Path(template.split(":///", 1)[1])
        target = self.folder / f"db-{next(self._n)}.db"
        for suffix in ("", "-wal"):  # the last connection's close usually folds the WAL in; copy it if not
            if Path(f"{source}{suffix}").exists():
                shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
        return self._url(target)

    async def drop(self, url: str) -> None:
        path = url.split(":///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def close(self) -> None:
        pass


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresStore:
    """Databases on a server we may create databases on; all are dropped at the end."""

    name = "postgresql"

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._prefix = f"gw_bench_{os.getpid()}"
        self._n = itertools.count()
        self._templates: list[str] = []

    def _url(self, name: str) -> str:
        return self.server_url.rsplit("/", 1)[0] + "/" + name

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_plain(self.server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def describe(self) -> dict[str, str]:
        """The server settings that decide what a commit costs: they belong beside the figures."""
        conn = await asyncpg.connect(_plain(self.server_url))
        try:
            return {name: await conn.fetchval(f"SHOW {name}")
                    for name in ("server_version", "fsync", "synchronous_commit", "max_connections")}
        finally:
            await conn.close()

    async def template(self, label: str, fill: Fill | None = None) -> str:
        name = f"{self._prefix}_tmpl_{label}"
        await self._admin(f"DROP DATABASE IF EXISTS {name}")
        await self._admin(f"CREATE DATABASE {name}")
        self._templates.append(name)
        await _migrated(self._url(name), fill)
        return self._url(name)

    async def clone(self, template: str) -> str:
        name = f"{self._prefix}_{next(self._n)}"
        await self._admin(f"CREATE DATABASE {name} TEMPLATE {template.rsplit('/', 1)[1]}")
        return self._url(name)

    async def drop(self, url: str) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    async def close(self) -> None:
        for name in self._templates:
            await self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def migrated_sqlite(path: Path) -> str:
    """A SQLite store kept from an earlier run (perhaps by an older version), brought to this
    version's schema first; its URL. The time it took is said, not counted in any figure."""
    url = f"sqlite+aiosqlite:///{path}"
    db = Database(url)
    try:
        start = time.perf_counter()
        before, after = await migrate(db)
        say(f"reusing {path}: migrated {before} -> {after} in {time.perf_counter() - start:.1f} s")
    finally:
        await db.dispose()
    return url
