"""The database for a one-off command: checked, never created or migrated, disposed after.

Only `run` and `migrate` create a database or change its schema. Every other command
refuses in one line (exit status 2) when the database is missing, unreachable or at
another schema than this version's, so a command run in the wrong folder never leaves
an empty `var/gateway.db` behind and a read-only one never migrates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # imported when a command runs: `--help` and `templates` never load SQLAlchemy
    from gateway.config import Settings
    from gateway.store.database import Database

T = TypeVar("T")


async def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    from gateway.store.database import Database
    from gateway.store.preflight import require_current_schema, require_existing, require_reachable

    origin = settings.origin("database.url")
    require_existing(settings.database_url, origin)
    db = Database(settings.database_url, sqlite_synchronous=settings.database.sqlite_synchronous,
                  connect_timeout=settings.database.connect_timeout, create=False)
    try:
        await require_reachable(db, origin)
        await require_current_schema(db, origin)
        return await work(db)
    finally:
        await db.dispose()
