"""Before a command uses the database: that it exists, answers, and has the schema this
version needs. Each failure is one line naming `database.url` (password masked) and where
it was set, for the command to print and exit with status 2.

`run` and `migrate` create and migrate; every other command only checks, so a command run
in the wrong folder never leaves an empty `var/gateway.db` behind.
"""

from __future__ import annotations

from sqlalchemy import text

from gateway.config import mask_url
from gateway.store.database import Database, sqlite_path
from gateway.store.migrate import current_revision, head_revision, known_revision
from gateway.store.outage import DatabaseNotReady, connect_failure

CREATE_HINT = "create it with `protocol-gateway migrate` (or start the daemon: `protocol-gateway run`)"


def _line(url: str, what: str, origin: str) -> str:
    return f"database.url: {mask_url(url)}: {what} [{origin}]"


def require_existing(url: str, origin: str) -> None:
    """SQLite: the file must be there already (connecting would create an empty one)."""
    path = sqlite_path(url) if url.startswith("sqlite") else None
    if path is not None and not path.exists():
        raise DatabaseNotReady(_line(url, f"the database does not exist; {CREATE_HINT}", origin))


async def require_reachable(db: Database, origin: str) -> None:
    try:
        async with db.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = connect_failure(exc)
        if reason is None:
            raise
        raise DatabaseNotReady(_line(db.url, f"cannot connect: {reason}", origin)) from None


async def require_current_schema(db: Database, origin: str) -> None:
    current, head = await current_revision(db), head_revision()
    if current == head:
        return
    if current is None:
        what = f"the database has no schema yet; {CREATE_HINT}"
    elif known_revision(current):
        what = f"the schema is at revision {current}, this version needs {head}: run `protocol-gateway migrate` first"
    else:
        what = (f"the schema is at revision {current}, which this version does not know (a newer protocol-gateway "
                f"migrated it; this one knows up to {head}): upgrade protocol-gateway")
    raise DatabaseNotReady(_line(db.url, what, origin))
