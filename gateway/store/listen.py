"""Wake-ups across processes on PostgreSQL: LISTEN for what other gateways enqueue.

Enqueueing sends `NOTIFY gateway_outbox` in the enqueuing transaction, so the signal is
delivered at commit, never for rows that were rolled back. Each process keeps one plain
asyncpg connection listening; when it drops, it reconnects, and polling covers the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from gateway.store.pg_tls import PostgresTarget, postgres_target

log = logging.getLogger("gateway.listen")

CHANNEL = "gateway_outbox"
RECONNECT_DELAY = 5.0  # seconds between tries while the database is away


class OutboxListener:
    def __init__(self, target: PostgresTarget | str, on_notify: Callable[[], None]) -> None:
        # The engine's own target, TLS options and all (a URL string is read the same way).
        self.target = postgres_target(target) if isinstance(target, str) else target
        self.on_notify = on_notify
        self.listening = asyncio.Event()  # set while a connection listens (tests wait on it)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.target.dsn, **self.target.connect_args)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listen connection failed", extra={"action": "listen_failed", "error": type(exc).__name__})
                await _wait(stop, RECONNECT_DELAY)
                continue
            try:
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.listening.set()
                await _first(stop.wait(), lost.wait())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                # The server ended the session before LISTEN took (a restart, pg_terminate_backend):
                # reconnect as when it drops later, rather than lose the wake-ups for good.
                log.warning("listen connection lost", extra={"action": "listen_failed", "error": type(exc).__name__})
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            if not stop.is_set():
                self.on_notify()  # something may have been enqueued while nobody listened
                await _wait(stop, RECONNECT_DELAY)

    def _notified(self, *_args: Any) -> None:
        self.on_notify()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
