"""Group commit: concurrent transactions that arrive while one commits share the next commit.

An event's transaction is short (a few inserts), and on SQLite there is one writer: with
fifty clients, fifty transactions queue for it one after the other, each paying its own
BEGIN, COMMIT and trip to the database thread. Here the first caller starts a
transaction at once (no waiting for company: an idle gateway adds no latency), and
whoever arrives while it runs waits for the next one, which takes all of them. A batch
first runs its members one after the other with nothing between them; if one raises, that
transaction is rolled back and the batch runs again with each member inside its own
SAVEPOINT, so one that fails (a conflict, a bad field) is rolled back alone and gets its
own exception; the others commit. Members fail seldom, and a savepoint is two statements
per member: on PostgreSQL two round trips, on SQLite a twentieth of an event's CPU.

On PostgreSQL up to `POSTGRES_IN_FLIGHT` such transactions run at once, each on its own
connection: there an event's time is mostly round trips to the server, during which another
transaction can use the loop (profiled: one at a time left the server and the loop idle
between trips). SQLite has one writer: one at a time.

Nothing is acknowledged before its commit: every member's future is resolved only after
the transaction holding it committed, and if the commit fails, every member fails.

The members of a batch run inside one `shared()` block: the service's is one look at the
templates' files (rendering/templates.py, `one_look`), so that a batch of openings stats each
file once, not once an event (~8 system calls an opening: a twentieth of its CPU).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from gateway.store.database import Database
from gateway.store.outage import database_unavailable

T = TypeVar("T")
MAX_BATCH = 64  # members per transaction: bounds how long the writer is held at once
POSTGRES_IN_FLIGHT = 4  # shared transactions at once on PostgreSQL (the pool has 10 connections or more)


class GroupCommit:
    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH, in_flight: int | None = None,
                 shared: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        self.db = db
        self.shared = shared  # the block a batch's members run in, one after the other
        self.max_batch = max_batch
        self.in_flight = in_flight if in_flight is not None else (1 if db.is_sqlite else POSTGRES_IN_FLIGHT)
        self._pending: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._leaders: set[asyncio.Task[None]] = set()
        self.transactions = 0  # for tests and benchmarks: how many commits served how many members
        self.members = 0

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a transaction, possibly shared; returns once it is committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if len(self._leaders) < self.in_flight:
            # A context of its own, not its first caller's: a leader serves every batch after, and
            # must not carry into them what that caller had set (a look at the templates, say).
            self._leaders.add(asyncio.create_task(self._commit_pending(), name="group-commit",
                                                  context=contextvars.Context()))
        return await future

    async def _commit_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                batch = [(fn, future) for fn, future in batch if not future.cancelled()]
                if batch:
                    await self._commit(batch)
        except BaseException:  # the leader itself was cancelled (shutdown): nobody waiting may hang
            waiting, self._pending = self._pending, []
            for _, future in waiting:
                if not future.done():
                    future.cancel()
            raise
        finally:
            # Gone from the count as it stops looking at `_pending`, not a turn of the loop later
            # (a done-callback): a member arriving in between would wait for no one.
            self._leaders.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _commit(self, batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]) -> None:
        functions = [fn for fn, _ in batch]
        try:
            if len(functions) == 1:  # alone: no savepoint needed, its failure is the transaction's
                outcomes = [(True, await self.db.transact(functions[0]))]
            else:
                try:
                    outcomes = [(True, v) for v in await self.db.transact(
                        lambda session: _all(session, functions, self.shared))]
                except _MemberFailed as failed:
                    if database_unavailable(failed.__cause__):  # the same again would only fail again, later
                        raise failed.__cause__ from None  # type: ignore[misc]
                    outcomes = await self.db.transact(lambda session: _each(session, functions, self.shared))
        except BaseException as exc:  # the commit failed (or never happened): nobody is acknowledged
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        self.transactions += 1
        self.members += len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes):
            if future.done():
                continue  # its caller went away; the work is committed all the same
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class _MemberFailed(Exception):
    """A member raised in a batch run without savepoints: run the batch again with them."""


def _all(session: Session, functions: list[Callable[[Session], Any]],
         shared: Callable[[], AbstractContextManager[Any]]) -> list[Any]:
    values = []
    with shared():
        for fn in functions:
            try:
                values.append(fn(session))
            except Exception as exc:
                raise _MemberFailed() from exc
    return values


def _each(session: Session, functions: list[Callable[[Session], Any]],
          shared: Callable[[], AbstractContextManager[Any]]) -> list[tuple[bool, Any]]:
    with shared():
        return [_member(session, fn) for fn in functions]


def _member(session: Session, fn: Callable[[Session], T]) -> tuple[bool, Any]:
    info = dict(session.info)
    try:
        with session.begin_nested():
            # The SAVEPOINT is sent now: the session sends it only when next asked for its connection,
            # and a member whose statements go straight to the driver (store/drivers.py) never asks.
            session.connection()
            return True, fn(session)
    except Exception as exc:  # rolled back to its savepoint; the rest of the batch goes on
        # What the member noted in session.info went with its savepoint (e.g. "the NOTIFY is sent").
        session.info.clear()
        session.info.update(info)
        return False, exc
