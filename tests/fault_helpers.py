"""Helpers for the fault tests: a queue filled behind the gateway's back, what the record
says, a daemon's environment, and a TCP forwarder a test can cut to take the database away."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select

from gateway.delivery import outbox
from gateway.store.database import Database
from gateway.store.installation import installation_key
from gateway.store.models import Notification
from tests.fakes.smtp_sink import SMTPSink

SENDER = "gw@example.com"
DOMAIN = "example.com"


async def prefill(db_url: str, count: int, *, start: int = 0) -> None:
    """`count` email notifications, due now, as if events had queued them (one transaction)."""
    db = Database(db_url)
    now = datetime.now(timezone.utc)
    try:
        await db.transact(lambda session: outbox.enqueue(session, [
            Notification(protocol_id=None, channel="email", recipient=f"c{i}@example.com",
                         template="protocol_opened", template_hash="sha256:test", locale="pt-BR",
                         subject=f"Protocolo {i}", body_text=f"Mensagem {i}", status="queued", attempts=0,
                         next_attempt_at=now, created_at=now, duplicate_possible=False)
            for i in range(start, start + count)
        ]))
    finally:
        await db.dispose()


async def statuses(db_url: str) -> collections.Counter[str]:
    """How many notifications are in each status, read from the database itself."""
    db = Database(db_url)
    try:
        async with db.read() as session:
            rows = (await session.execute(
                select(Notification.status, func.count()).group_by(Notification.status))).all()
    finally:
        await db.dispose()
    return collections.Counter({status: count for status, count in rows})


async def notification_rows(db_url: str) -> list[Notification]:
    db = Database(db_url)
    try:
        async with db.read() as session:
            return list((await session.scalars(select(Notification).order_by(Notification.id))).all())
    finally:
        await db.dispose()


def message_ids(sink: SMTPSink) -> collections.Counter[str]:
    return collections.Counter(str(m["Message-ID"]) for m in sink.messages)


async def installation_of(db_url: str) -> str:
    """The database's own key, which every Message-ID it sends carries."""
    db = Database(db_url)
    try:
        return await db.query(installation_key)
    finally:
        await db.dispose()


def expected_message_id(notification_id: int, installation: str) -> str:
    return f"<notification-{notification_id}.{installation}@{DOMAIN}>"


def smtp_env(db_url: str, sink: SMTPSink, port: int, **extra: str) -> dict[str, str]:
    """A daemon sending email to the sink, SMS to a file, sweeps off (they would add messages)."""
    return {
        "GATEWAY_DATABASE__URL": db_url,
        "GATEWAY_HTTP__PORT": str(port),
        "GATEWAY_EMAIL__TRANSPORT": "smtp",
        "GATEWAY_EMAIL__FROM": SENDER,
        "GATEWAY_EMAIL__SMTP__HOST": sink.host,
        "GATEWAY_EMAIL__SMTP__PORT": str(sink.port),
        "GATEWAY_EMAIL__SMTP__STARTTLS": "false",
        "GATEWAY_DISPATCH__POLL_INTERVAL": "200ms",
        "GATEWAY_SWEEPS__ENABLED": "false",
        **extra,
    }


class TCPProxy:
    """A loopback TCP forwarder to `target` that a test can cut and restore.

    Cut: the listening socket closes (new connections are refused) and every open
    connection is dropped at once, as when a database server dies or the network between
    goes away. Restore: it listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_url(cls, url: str) -> TCPProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url_through(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo + '@' if userinfo else ''}{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def aclose(self) -> None:
        await self.cut()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_writer, server_writer))
        pumps = [asyncio.create_task(self._pump(client_reader, server_writer)),
                 asyncio.create_task(self._pump(server_reader, client_writer))]
        self._tasks.update(pumps)
        for task in pumps:
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
