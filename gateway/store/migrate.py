"""Alembic, run from code: the scripts ship inside the package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gateway.store.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant: processes migrating one PostgreSQL at once take turns on this lock.
MIGRATION_LOCK_KEY = 0x70676D67  # "pgmg"

log = logging.getLogger("gateway.migrate")


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest schema this version knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revision(revision: str) -> bool:
    """False for a revision a newer version wrote (this one has no script for it)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic says "unknown" in a few ways (ResolutionError, CommandError)
        return False


async def current_revision(db: Database) -> str | None:
    # A reader: asking must not take SQLite's write lock from a running daemon.
    async with db.reader.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def migrate(db: Database) -> tuple[str | None, str | None]:
    """Upgrade to the newest schema; returns (before, after) revisions."""
    async with db.writer.begin() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        before = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        if before != head_revision():
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
        after = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    if before != after:
        log.info("migrated", extra={"action": "db_migrated", "from_revision": before, "to_revision": after})
    return before, after
