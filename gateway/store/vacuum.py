"""SQLite after anonymization: nothing of the old values left in the file or its WAL.

The anonymizing transaction runs with `secure_delete` on, so every cell, overflow page and
freelist page it frees is overwritten with zeros as it is freed. What survives are the
WAL's frames, which hold the pages as they were until a checkpoint copies them back and
the WAL is truncated: `erase_sqlite` does that, always. VACUUM (`retention.vacuum`) adds
nothing to the erasure; it gives the freed space back to the file system, and costs a
rewrite of the whole file (~17 s for a store of 1,000,000 protocols, `python -m bench.sweeps`).
"""

from __future__ import annotations

import logging

from gateway.store.database import Database

log = logging.getLogger(__name__)


async def erase_sqlite(db: Database, *, vacuum: bool) -> bool:
    """Checkpoint and truncate the WAL (and VACUUM, then again): outside any transaction, on the writer.

    Returns whether the WAL could be emptied (a reader in another process may hold it).
    """
    statements = ["PRAGMA wal_checkpoint(TRUNCATE)"]
    if vacuum:
        statements += ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
    async with db.checkpoint_lock:
        rows = await db.outside_transaction(statements)
    # A checkpoint's first column says it was kept from finishing (busy).
    complete = not any(sql.startswith("PRAGMA") and row is not None and row[0] for sql, row in zip(statements, rows))
    if not complete:
        log.warning("WAL not emptied after anonymizing: old values stay in it until the next checkpoint",
                    extra={"action": "retention_wal_not_emptied"})
    return complete
