"""The one EmailMessage every email transport sends (SMTP) or files (Maildir)."""

from __future__ import annotations

import binascii
import re
import secrets
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import Parser
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr

from gateway.delivery.channels.base import Message
from gateway.delivery.channels.email_headers import check_single_line, mailbox, unstructured
from gateway.delivery.errors import PermanentDeliveryError

# RFC 5322 field names: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")


def build_email(message: Message, sender: str) -> EmailMessage:
    """From, To, Subject, Reply-To, Message-ID, Date, the text (and html) body, then `message.headers`.

    Extra headers replace a built one of the same name. Raises `PermanentDeliveryError`
    if any header would carry a line break: the caller cleans values, but a break that
    slipped through would let a value inject headers of its own, so refuse here too.
    """
    headers: dict[str, str] = {
        "From": sender,
        "To": message.to,
        "Subject": message.subject or "",
        "Message-ID": _message_id(message, sender),
        "Date": format_datetime(datetime.now(timezone.utc)),
    }
    if message.reply_to:
        headers["Reply-To"] = message.reply_to
    for name, value in message.headers.items():
        if not _FIELD_NAME.match(name):
            raise PermanentDeliveryError(f"not a valid header name: {name!r}")
        for same in [k for k in headers if k.lower() == name.lower()]:
            del headers[same]
        headers[name] = value
    written, rest = [], {}
    for name, value in headers.items():
        check_single_line(name, value)
        field = _field(name, value)
        if field is None:
            rest[name] = value
        else:
            written.append(field)
    # Parsed, our folded fields are kept as written: Python's own folding would decode text that
    # looks like an encoded word, and the Maildir writer (mailbox) would not fold at all.
    email = Parser(policy=default_policy).parsestr("\r\n".join(written) + "\r\n\r\n", headersonly=True)
    assert isinstance(email, EmailMessage)
    try:
        for name, value in rest.items():
            email[name] = value
    except (ValueError, TypeError, IndexError) as exc:  # the header parsers' ways of saying "malformed"
        raise PermanentDeliveryError(f"cannot build the email headers: {exc}") from exc
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")  # makes it multipart/alternative
        email.set_boundary(_boundary())  # Python's own makes the line 83 octets where Maildir does not fold it
    return email


def _field(name: str, value: str) -> str | None:
    """The folded field for the headers a consumer reads, or None for the `email` package to write."""
    kind = name.lower()
    if kind == "subject":
        return unstructured(name, value)
    if kind in ("from", "to", "reply-to"):
        return mailbox(name, value)
    return None


def _message_id(message: Message, sender: str) -> str:
    message_id = message.message_id or make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    return message_id if message_id.startswith("<") else f"<{message_id}>"


# The SMTP hot path. Python's `email` package parses every header it is given and costs
# about 1.3 ms a message, more than the SMTP exchange itself; this writer builds the same
# message directly, 7-bit clean (headers from `email_headers`, quoted-printable bodies
# through the C `binascii`), so no 8BITMIME or SMTPUTF8 is needed. Anything it does not
# cover (a non-ASCII address, extra headers) returns None and goes through `build_email`.

_BOUNDARY_PREFIX = "=_pgw_"


def _boundary() -> str:
    return _BOUNDARY_PREFIX + secrets.token_hex(12)  # "=_" never appears in quoted-printable text


def _qp(text: str) -> bytes:
    # Normalise line ends first: quoted-printable keeps bare CR as data otherwise.
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    body = (body if body.endswith("\n") else body + "\n").encode("utf-8")  # as set_content() ends it
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def _part(content_type: str, text: str) -> bytes:
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + _qp(text)


def email_bytes(message: Message, sender: str, *, now: datetime | None = None) -> tuple[bytes, str] | None:
    """(RFC 5322 bytes for SMTP DATA, the Message-ID), or None when `build_email` must do it."""
    for name, value in (("From", sender), ("To", message.to), ("Reply-To", message.reply_to or ""),
                        ("Subject", message.subject or ""), ("Message-ID", message.message_id or "")):
        check_single_line(name, value)
    if message.headers:
        return None
    sender_field, to_field = mailbox("From", sender), mailbox("To", message.to)
    reply_to = mailbox("Reply-To", message.reply_to) if message.reply_to else None
    if sender_field is None or to_field is None or (message.reply_to and reply_to is None):
        return None
    message_id = _message_id(message, sender)
    if not message_id.isascii():
        return None
    lines = [
        sender_field,
        to_field,
        unstructured("Subject", message.subject or ""),
        f"Message-ID: {message_id}",
        f"Date: {format_datetime(now or datetime.now(timezone.utc))}",
    ]
    if reply_to:
        lines.append(reply_to)
    lines.append("MIME-Version: 1.0")
    if message.html is None:
        return ("\r\n".join(lines) + "\r\n").encode() + _part("text/plain", message.text), message_id
    boundary = _boundary()
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sep = f"\r\n--{boundary}\r\n".encode()
    return (head + sep[2:] + _part("text/plain", message.text) + sep + _part("text/html", message.html)
            + f"\r\n--{boundary}--\r\n".encode()), message_id
