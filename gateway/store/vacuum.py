"""SQLite after anonymization: the WAL checkpointed and VACUUMed, so old values survive in
neither free pages nor the WAL."""

from __future__ import annotations

import logging

from gateway.store.database import Database

log = logging.getLogger(__name__)


async def vacuum_sqlite(db: Database) -> bool:
    """Checkpoint and truncate the WAL, VACUUM, and again: outside any transaction, on the writer.

    Returns whether the WAL could be emptied (a reader in another process may hold it).
    """
    complete = True
    async with db.writer.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # aiosqlite: autocommit (isolation_level None), no BEGIN
        for sql in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
            cursor = await driver.execute(sql)
            row = await cursor.fetchone()
            await cursor.close()
            if sql.startswith("PRAGMA") and row is not None and row[0]:
                complete = False
    if not complete:
        log.warning("WAL not emptied after VACUUM", extra={"action": "retention_vacuum_incomplete"})
    return complete
