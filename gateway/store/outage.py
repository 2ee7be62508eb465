"""When the database is away: how to tell, and how to say it in one line.

Two audiences. A request in flight (the API, the dispatcher) only needs to know that the
database, not the request, is the problem: `database_unavailable(exc)` says so for a
refused or dropped connection, a server shutting down or restarting (SQLSTATE class 57P),
a connection error (class 08) and a session left unusable by one of these
(PendingRollbackError), so the caller answers 503 and acknowledges nothing. A command
starting up needs to tell a person what to fix: `connect_failure(exc)` words the reason
("connection refused", 'role "x" does not exist'), never with the password.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
from collections.abc import Iterator

from sqlalchemy.exc import InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.config import ConfigError

# SQLSTATE prefixes of "the server went away, or is not taking connections now".
UNAVAILABLE_SQLSTATES = ("08", "57P")
# Connect-time refusals a person fixes in database.url or on the server, by SQLSTATE.
# (unknown role, wrong password, no such database, too many connections)
_REFUSALS = frozenset({"28000", "28P01", "3D000", "53300"})


class DatabaseUnavailable(Exception):
    """The database cannot be reached: the API answers 503 and acknowledges nothing."""


class DatabaseNotReady(ConfigError):
    """A command cannot use the database as configured (unreachable, missing, schema behind):
    one line naming `database.url`, exit status 2."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 12:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def database_unavailable(exc: BaseException) -> bool:
    """The database (not the request) failed: a 503, nothing acknowledged, the pool recovers."""
    for link in _chain(exc):
        if isinstance(link, (DatabaseUnavailable, PendingRollbackError, PoolTimeout, OperationalError, InterfaceError)):
            return True
        if getattr(link, "connection_invalidated", False):
            return True
        state = _sqlstate(link)
        if state and state.startswith(UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(link, OSError) and not isinstance(link, ssl.SSLError):
            return True
    return False


def connect_failure(exc: BaseException) -> str | None:
    """Why a connection could not be made, in words a person can act on; None when `exc` is
    not about reaching the database (a bug, which keeps its traceback)."""
    for link in _chain(exc):
        state = _sqlstate(link)
        if state in _REFUSALS or (state and state.startswith(UNAVAILABLE_SQLSTATES)):
            message = str(getattr(link, "message", "") or link).strip()
            return message.splitlines()[0] if message else f"refused (SQLSTATE {state})"
        if isinstance(link, ssl.SSLCertVerificationError):
            return f"TLS: the server's certificate is not trusted ({link.verify_message})"
        if isinstance(link, ssl.SSLError):
            return f"TLS: {link.reason or link}"
        if isinstance(link, socket.gaierror):
            return f"cannot resolve the host name ({link.strerror})"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused (is the server running and listening on that host and port?)"
        if isinstance(link, TimeoutError):
            return "no answer in time (database.connect_timeout)"
        if isinstance(link, sqlite3.OperationalError):  # "unable to open database file"
            return str(link)
        if isinstance(link, OSError) and link.strerror:
            return link.strerror[:1].lower() + link.strerror[1:]
        if isinstance(link, ConnectionError):
            return str(link) or type(link).__name__
    return None
