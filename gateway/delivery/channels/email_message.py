"""The one EmailMessage every email transport sends (SMTP) or files (Maildir)."""

from __future__ import annotations

import binascii
import re
import secrets
from datetime import datetime, timezone
from email.header import Header
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from gateway.delivery.channels.base import Message
from gateway.delivery.errors import PermanentDeliveryError

# RFC 5322 field names: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")


def build_email(message: Message, sender: str) -> EmailMessage:
    """From, To, Subject, Reply-To, Message-ID, Date, the text (and html) body, then `message.headers`.

    Extra headers replace a built one of the same name. Raises `PermanentDeliveryError`
    if any header would carry CR or LF: the caller cleans values, but a line break that
    slipped through would let a value inject headers of its own, so refuse here too.
    """
    message_id = message.message_id or make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    headers: dict[str, str] = {
        "From": sender,
        "To": message.to,
        "Subject": message.subject or "",
        "Message-ID": message_id,
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
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise PermanentDeliveryError(f"header {name} contains a line break")

    email = EmailMessage(policy=default_policy)
    try:
        for name, value in headers.items():
            email[name] = value
    except (ValueError, TypeError, IndexError) as exc:  # the header parsers' ways of saying "malformed"
        raise PermanentDeliveryError(f"cannot build the email headers: {exc}") from exc
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")  # makes it multipart/alternative
    return email


# The SMTP hot path. Python's `email` package parses every header it is given and costs
# about 1.3 ms a message, more than the SMTP exchange itself; this writer builds the same
# message directly, 7-bit clean (RFC 2047 words for non-ASCII headers, quoted-printable
# bodies through the C `binascii`), so no 8BITMIME or SMTPUTF8 is needed. Anything it does
# not cover (a non-ASCII address) returns None and goes through `build_email` instead.

_BOUNDARY_PREFIX = "=_pgw_"


def _header_value(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _address(value: str) -> str | None:
    name, address = parseaddr(value)
    if not address or not address.isascii() or "@" not in address:
        return None
    return formataddr((name, address), charset="utf-8") if name else address


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
        if "\r" in value or "\n" in value:
            raise PermanentDeliveryError(f"header {name} contains a line break")
    sender_field, to_field = _address(sender), _address(message.to)
    reply_to = _address(message.reply_to) if message.reply_to else None
    if sender_field is None or to_field is None or (message.reply_to and reply_to is None) or message.headers:
        return None
    message_id = message.message_id or make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    subject = message.subject or ""
    if not message_id.isascii():
        return None
    lines = [
        f"From: {sender_field}",
        f"To: {to_field}",
        f"Subject: {_header_value(subject)}",
        f"Message-ID: {message_id}",
        f"Date: {format_datetime(now or datetime.now(timezone.utc))}",
    ]
    if reply_to:
        lines.append(f"Reply-To: {reply_to}")
    lines.append("MIME-Version: 1.0")
    if message.html is None:
        return ("\r\n".join(lines) + "\r\n").encode() + _part("text/plain", message.text), message_id
    boundary = _BOUNDARY_PREFIX + secrets.token_hex(12)  # never appears in quoted-printable text
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sep = f"\r\n--{boundary}\r\n".encode()
    return (head + sep[2:] + _part("text/plain", message.text) + sep + _part("text/html", message.html)
            + f"\r\n--{boundary}--\r\n".encode()), message_id
