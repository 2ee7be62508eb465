"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives.

    with SMTPSink() as sink:            # or: async with SMTPSink() as sink:
        settings = SMTPSettings(host=sink.host, port=sink.port, starttls=False)
        ...
        assert sink.messages[0]["Subject"] == "..."

It runs in its own thread and event loop (aiosmtpd's `Controller`), so a blocking
test and an async test can both use it. Test levers:

- `refuse(rule)`: `rule(rcpt) -> "451 4.3.0 try later"` refuses that recipient with
  that reply; `None` accepts it. `refuse(None)` accepts everyone again.
- `data_delay`: seconds to wait before answering DATA (the message is kept first), to
  make a client time out after the message arrived.
- `drop_connections()`: close every open session from the server side, as a server
  restart or an idle timeout does.
- `stop()` / `start()`: an outage and a recovery on the same port.
- `connections`: how many client connections were opened so far.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

RefusalRule = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""  # as it arrived: what a DKIM signature is checked against


class SMTPSink:
    host = "127.0.0.1"

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, require_starttls: bool = False) -> None:
        # With a TLS context the sink offers STARTTLS; require_starttls refuses MAIL before it
        # ("530 Must issue a STARTTLS command first"), as relays that insist on TLS do.
        self.tls_context, self.require_starttls = tls_context, require_starttls
        self.port = free_port()
        self.received: list[Received] = []
        self.connections = 0
        self.data_delay = 0.0
        self._refusal: RefusalRule | None = None
        self._sessions: list[SMTP] = []
        self._lock = threading.Lock()  # the server thread appends while the test thread reads
        self._controller: _Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def refuse(self, rule: RefusalRule | None) -> None:
        self._refusal = rule

    def start(self) -> None:
        # A stopped Controller has closed its loop and cannot restart: build a new one each time.
        controller = _Controller(self)
        controller.start()
        controller.counting = True  # start() made one probe connection of its own: not a client's
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self.drop_connections()  # a real server going down closes its sockets
            self._controller.stop()
            self._controller = None

    def drop_connections(self) -> None:
        """Close every open session from the server side, and return once they are closed."""
        controller = self._controller
        if controller is None:
            return

        async def close_all() -> None:
            with self._lock:
                sessions, self._sessions = self._sessions, []
            for session in sessions:
                if session.transport is not None and not session.transport.is_closing():
                    session.transport.close()

        asyncio.run_coroutine_threadsafe(close_all(), controller.loop).result(timeout=5)

    def __enter__(self) -> SMTPSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SMTPSink:
        await asyncio.to_thread(self.start)  # start() blocks until the server answers
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # Called from the server thread.

    def _opened(self, session: SMTP, counting: bool) -> None:
        with self._lock:
            self._sessions.append(session)
            if counting:
                self.connections += 1

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._refusal(address) if self._refusal else None
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = BytesParser(policy=default_policy).parsebytes(envelope.original_content or b"")
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message,
                                          envelope.original_content or b""))
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 OK queued"


class _Controller(Controller):
    def __init__(self, sink: SMTPSink) -> None:
        # server_hostname: aiosmtpd would otherwise ask DNS for this machine's FQDN.
        super().__init__(sink, hostname=sink.host, port=sink.port, server_hostname="sink.test", ready_timeout=5,
                         tls_context=sink.tls_context, require_starttls=sink.require_starttls)
        self.sink = sink
        self.counting = False

    def factory(self) -> SMTP:  # called once per accepted connection
        server = super().factory()
        self.sink._opened(server, self.counting)
        return server


def free_port() -> int:
    """A loopback port nothing listens on right now (also handy as a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

