"""PostgreSQL's pool checks a connection before lending it only when it sat idle a while.

SQLAlchemy's `pool_pre_ping` checks it at every checkout, and on asyncpg a check is three round
trips: SQLAlchemy's adapter wraps its empty statement in BEGIN and ROLLBACK (for PgBouncer's
transaction mode). Each waits its turn on a busy event loop: ~3 ms of a dispatcher turn's ~8 on
the SMS drain, and ~20 µs of CPU an SMS (bench/README.md, fifteenth round). HikariCP skips the
check for a connection used within the last 500 ms (`aliveBypassWindowMs`); so does this, with
the same answer as the pre-ping otherwise: a connection that fails the check invalidates the
pool's connections older than it and is replaced, before anything runs on it.

What the window gives up: a connection the server dropped less than BYPASS seconds after its last
use fails the transaction that gets it, as one dropped mid-transaction always did. The request
gets a 503 problem and the dispatcher tries its turn again (store/outage.py). Once any connection
was found dead (the Core's statements invalidate the whole pool then, the driver's statements
only their own connection: store/postgres_driver.py), every connection returned before that
moment is checked at its next checkout, window or not: a restart ends them all, and only the
first transaction after it fails, whichever path it took.

A connection is "returned" when its transaction ends, whether or not a statement reached the
server (asyncpg's adapter begins lazily): a checkout that ran nothing restarts its window too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine

BYPASS = 0.5  # seconds: a connection returned to the pool this recently is lent unchecked
_RETURNED = "gateway.returned_at"  # in the connection record's info: when it last came back


def ping_when_idle(engine: AsyncEngine, *, bypass: float = BYPASS,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Check each connection at checkout unless it was connected or returned within `bypass` seconds,
    and after the last time one was found dead (in place of `pool_pre_ping`, which the engine must
    not also have)."""
    sync = engine.sync_engine
    dialect = sync.dialect
    last_lost = [-math.inf]  # when a connection of this pool was last invalidated (found dead, most often)

    @event.listens_for(sync, "invalidate")
    def _lost(dbapi_connection: Any, record: Any, exception: BaseException | None) -> None:
        last_lost[0] = clock()

    @event.listens_for(sync, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = clock()  # just connected: nothing to check yet

    @event.listens_for(sync, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:  # (None: it was invalidated on its way back)
            record.info[_RETURNED] = clock()

    @event.listens_for(sync, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is not None and returned >= last_lost[0] and clock() - returned < bypass:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # As the pre-ping does: this connection and the pool's older ones go, a new one is made.
            raise InvalidatePoolError("the server closed the connection while it was idle") from exc
