"""The one EmailMessage every email transport sends (SMTP) or files (Maildir)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr

from .base import Message, PermanentDeliveryError

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
