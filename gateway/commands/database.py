"""The database for a one-off command: migrated first (as `keys` does), disposed after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import Settings
from gateway.store.database import Database
from gateway.store.migrate import migrate

T = TypeVar("T")


async def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.database_url, sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        await migrate(db)
        return await work(db)
    finally:
        await db.dispose()
