"""The bounce listener: an SMTP (or LMTP) server, built on aiosmtpd, for the bounce domain.

The operator's MTA forwards mail for `email.bounces.domain` here (README, "Bounces"). A
recipient that is not a genuine return path of ours (no such notification, a wrong token) is
refused at RCPT with 550; a message that is not a DSN is accepted and ignored (auto-replies
land here too); a DSN marks its notification `undelivered`. When the database cannot take
it, the answer is 451 and the MTA keeps the bounce and tries again: none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import datetime

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.config import BounceSettings
from gateway.delivery.bounces import apply_bounce
from gateway.delivery.dsn import failures
from gateway.delivery.status_hooks import StatusHooks
from gateway.delivery.verp import ReturnPaths
from gateway.store.database import Database

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60  # seconds an MTA's connection may stay silent


class BounceListener:
    def __init__(self, db: Database, hooks: StatusHooks, paths: ReturnPaths, settings: BounceSettings, *,
                 clock: Callable[[], datetime], wake: Callable[[], None]) -> None:
        self.db, self.hooks, self.paths, self.settings = db, hooks, paths, settings
        self.clock, self.wake = clock, wake
        self._servers: list[asyncio.Server] = []
        self.port: int | None = None
        # Bound at start-up by the daemon (a taken port stops it in one line); else bound in start().
        self.sockets: list[socket.socket] | None = None

    async def start(self) -> int:
        protocol = LMTP if self.settings.protocol == "lmtp" else SMTP
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return protocol(self, hostname="protocol-gateway", ident="protocol-gateway bounces",
                            data_size_limit=self.settings.max_size, timeout=IDLE_TIMEOUT)

        if self.sockets:
            self._servers = [await loop.create_server(factory, sock=sock) for sock in self.sockets]
        else:
            self._servers = [await loop.create_server(factory, self.settings.host, self.settings.port)]
        self.port = self._servers[0].sockets[0].getsockname()[1]
        log.info("bounce listener started", extra={"action": "bounce_listener_started", "host": self.settings.host,
                                                    "port": self.port, "protocol": self.settings.protocol})
        return self.port

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
            await server.wait_closed()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.paths.notification_of(address) is None:
            log.warning("bounce refused: not one of our return paths", extra={"action": "bounce_refused"})
            return "550 5.1.1 not a return path of this gateway"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        found = failures(raw)
        if not found:  # not a DSN, or one that reports no failure (delayed, delivered)
            log.info("mail to a return path that is no failure report: ignored", extra={"action": "bounce_ignored"})
            return "250 2.0.0 OK: no failure reported, nothing to do"
        ids = [i for i in (self.paths.notification_of(r) for r in envelope.rcpt_tos) if i is not None]
        try:
            queued = 0
            async with self.db.write() as db_session:
                for notification_id in ids:
                    _, more = await apply_bounce(db_session, self.hooks, notification_id=notification_id,
                                                 failure=found[0], now=self.clock())
                    queued += more
        except Exception as exc:  # the MTA keeps the bounce and tries again later
            log.warning("bounce not recorded: try again", extra={"action": "bounce_deferred",
                                                                 "error": type(exc).__name__})
            return "451 4.3.0 cannot record the bounce now, try again later"
        if queued:
            self.wake()
        return "250 2.0.0 OK: bounce recorded"
