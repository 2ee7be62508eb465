"""Email over SMTP through a small pool of reused aiosmtplib connections.

One send holds one connection for its whole MAIL/RCPT/DATA transaction. The
transaction is spelled out (rather than `send_message`) so a failure can be placed
before or after DATA began: before, nothing left and a retry is safe; after, the
server may have queued the message and the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import re
from email.message import EmailMessage

import aiosmtplib
from aiosmtplib import SMTPException, SMTPRecipientRefused, SMTPResponseException, SMTPSenderRefused, SMTPStatus
from aiosmtplib.email import flatten_message, parse_address

from gateway.config import SMTPSettings
from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.channels.dkim_signer import DKIMSigner
from gateway.delivery.channels.email_message import build_email, email_bytes
from gateway.delivery.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError

log = logging.getLogger(__name__)

QUIT_TIMEOUT = 2.0  # seconds: a polite QUIT must not hold up shutdown


# A bare address: a dot-atom local part at a dot-separated domain, what every consumer address is
# once checked at the opening. email.utils.parseaddr gives it back unchanged (a test holds that),
# and parsing costs ~15 µs of pure Python: aiosmtplib's mail() and rcpt() parsed each address
# again, three parses a send (5 % of the end-to-end bench's CPU).
_BARE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                   r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def mailbox(address: str) -> str:
    """The bare address for the envelope, as aiosmtplib's parse_address gives it: ValueError for one
    that could smuggle a parameter or a command onto the SMTP line."""
    return address if _BARE.fullmatch(address) else parse_address(address)


class _DroppedBeforeData(TransientDeliveryError):
    """The connection was gone before DATA: nothing was sent, one fresh try is safe."""


class SMTPTransport:
    sends_receipts = False  # acceptance by the relay is all SMTP says

    def __init__(self, settings: SMTPSettings, sender: str, *, signer: DKIMSigner | None = None) -> None:
        self._settings = settings
        self._signer = signer  # DKIM, when email.dkim is set
        self._sender = sender  # the From header, display name and all
        self._envelope_sender = parse_address(sender)  # the bare address for MAIL FROM
        self._clients = [self._new_client() for _ in range(settings.pool_size)]
        # LIFO: under light load one warm connection serves every send and the rest stay unopened.
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        for client in self._clients:
            self._idle.put_nowait(client)

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,  # per command; a read timeout after DATA began is an unknown outcome
            use_tls=s.tls,
            # True: STARTTLS is required (fails if not offered). False: never, rather than the
            # library's default of upgrading whenever offered, which breaks on self-signed certs.
            start_tls=s.starttls,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
        )

    async def send(self, message: Message) -> Receipt:
        try:
            recipient = mailbox(message.to)
        except ValueError as exc:
            raise PermanentDeliveryError(f"cannot send to {message.to!r}: {exc}") from exc
        try:
            return_path = mailbox(message.return_path) if message.return_path else self._envelope_sender
        except ValueError as exc:
            raise PermanentDeliveryError(f"cannot use the return path {message.return_path!r}: {exc}") from exc
        fast = email_bytes(message, self._sender)
        payload, message_id = fast if fast is not None else (None, None)
        email = build_email(message, self._sender) if fast is None else None
        client = await self._idle.get()
        try:
            await self._deliver(client, payload, email, recipient, return_path)
        except DeliveryError:
            raise
        except BaseException:
            client.close()  # cancelled mid-command: the session is out of step, never reuse it
            raise
        finally:
            self._idle.put_nowait(client)
        return Receipt(provider_id=message_id if email is None else str(email["Message-ID"]), status="sent")

    async def _deliver(self, client: aiosmtplib.SMTP, payload: bytes | None, email: EmailMessage | None,
                       recipient: str, envelope_sender: str) -> None:
        reused = client.is_connected
        if not reused:
            await self._connect(client)
        try:
            await self._transact(client, payload, email, recipient, envelope_sender)
        except _DroppedBeforeData:
            if not reused:
                raise
            # A server that closed an idle connection is often only noticed on its next use.
            log.info("smtp connection was closed by the server; reconnecting", extra={"action": "smtp_reconnect"})
            await self._connect(client)
            await self._transact(client, payload, email, recipient, envelope_sender)

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()  # the extensions decide the MAIL options below
        except (SMTPException, OSError) as exc:  # ssl.SSLCertVerificationError is an OSError only
            client.close()
            # Greeting, STARTTLS and AUTH failures concern the server or our settings, not
            # this message: once they are fixed the same message can go, so try again later.
            code = str(exc.code) if isinstance(exc, SMTPResponseException) else None
            raise TransientDeliveryError(
                f"cannot open an SMTP session with {self._settings.host}:{self._settings.port}: {exc}", code=code
            ) from exc

    async def _transact(self, client: aiosmtplib.SMTP, payload: bytes | None, email: EmailMessage | None,
                        recipient: str, envelope_sender: str) -> None:
        utf8 = not (envelope_sender + recipient).isascii()
        if utf8 and not client.supports_extension("smtputf8"):
            raise PermanentDeliveryError(f"{recipient!r} needs SMTPUTF8, which the server does not offer")
        if payload is not None:  # already 7-bit clean: no body options needed
            options: list[str] = ["SMTPUTF8"] if utf8 else []
            data = payload
        else:
            assert email is not None
            eight_bit = client.supports_extension("8bitmime")
            options = (["BODY=8BITMIME"] if eight_bit else []) + (["SMTPUTF8"] if utf8 else [])
            data = flatten_message(email, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
        encoding = "utf-8" if utf8 else "ascii"
        if self._signer is not None:
            data = await self._signer.sign_async(data)

        data_began = sender_accepted = False
        try:
            await _mail(client, envelope_sender, options, encoding)
            sender_accepted = True
            await _rcpt(client, recipient, encoding)
            data_began = True
            await client.data(data)
        except SMTPResponseException as exc:  # a refusal: the server answered and kept nothing
            await _reset(client)
            if not sender_accepted:  # about our session or sender (530 STARTTLS or AUTH first), not this message
                raise self._session_refused(exc) from exc
            raise _refusal(exc) from exc
        except (SMTPException, OSError) as exc:  # timeouts and disconnects are OSErrors too
            client.close()
            if data_began:
                raise UnknownOutcomeError(f"SMTP connection failed during DATA: {exc!r}") from exc
            if isinstance(exc, ConnectionError):
                raise _DroppedBeforeData(f"SMTP connection lost before DATA: {exc}") from exc
            raise TransientDeliveryError(f"SMTP transaction failed before DATA: {exc!r}") from exc

    def _session_refused(self, exc: SMTPResponseException) -> TransientDeliveryError:
        # Every message would meet the same refusal until the settings or the relay are fixed,
        # so it is retried (and /readyz says so) rather than failing each message for good.
        return TransientDeliveryError(
            f"the SMTP server {self._settings.host}:{self._settings.port} refuses mail from our sender: "
            f"{exc.code} {exc.message} (check email.smtp.starttls, .username and email.from)", code=str(exc.code))

    async def probe(self) -> None:
        """What every send needs, with nothing sent: connect, EHLO, STARTTLS and login as
        configured, then MAIL FROM our sender and RSET. Raises a TransientDeliveryError saying
        what failed."""
        client = self._new_client()
        try:
            await self._connect(client)
            try:
                await _mail(client, self._envelope_sender, [], "ascii")
                await client.rset()
            except SMTPResponseException as exc:
                raise self._session_refused(exc) from exc
            except (SMTPException, OSError) as exc:
                raise TransientDeliveryError(
                    f"the SMTP session with {self._settings.host}:{self._settings.port} failed: {exc}") from exc
        finally:
            if client.is_connected:
                try:
                    await client.quit(timeout=QUIT_TIMEOUT)
                except (SMTPException, OSError):
                    client.close()

    async def aclose(self) -> None:
        """QUIT every open connection, waiting for sends in flight to finish first."""
        taken = [await self._idle.get() for _ in self._clients]
        for client in taken:
            if client.is_connected:
                try:
                    await client.quit(timeout=QUIT_TIMEOUT)
                except (SMTPException, OSError):
                    client.close()
            self._idle.put_nowait(client)


# MAIL and RCPT as aiosmtplib's mail() and rcpt() send them, for addresses already bare (see
# mailbox). Those methods also send EHLO first when the session has none: here _connect always
# has, and a session out of step is closed and opened again, never reused.
async def _mail(client: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str) -> None:
    reply = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode(encoding) + b">",
                                         *[option.encode("ascii") for option in options])
    if reply.code != SMTPStatus.completed:
        raise SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt(client: aiosmtplib.SMTP, recipient: str, encoding: str) -> None:
    reply = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode(encoding) + b">")
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise SMTPRecipientRefused(reply.code, reply.message, recipient)


def _refusal(exc: SMTPResponseException) -> DeliveryError:
    text = f"SMTP server refused the message: {exc.code} {exc.message}"
    if exc.code // 100 == 5:
        return PermanentDeliveryError(text, code=str(exc.code))
    return TransientDeliveryError(text, code=str(exc.code))  # 4xx, or a reply that makes no sense here


async def _reset(client: aiosmtplib.SMTP) -> None:
    """RSET after a refusal so the connection can carry the next message."""
    try:
        await client.rset()
    except (SMTPException, OSError):
        client.close()
