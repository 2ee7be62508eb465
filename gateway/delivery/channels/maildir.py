"""Email filed into a local Maildir: for development, demos and tests, no server needed."""

from __future__ import annotations

import asyncio
import mailbox
from email.message import EmailMessage
from pathlib import Path

from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.channels.email_message import build_email


class MaildirTransport:
    sends_receipts = False

    def __init__(self, folder: Path, sender: str) -> None:
        self._folder = folder
        self._sender = sender

    async def send(self, message: Message) -> Receipt:
        email = build_email(message, self._sender)
        key = await asyncio.to_thread(self._file, email)  # disk I/O stays off the event loop
        return Receipt(provider_id=key, status="sent")

    def _file(self, email: EmailMessage) -> str:
        # Maildir writes to tmp/ then renames into new/, with a unique name per message,
        # so concurrent threads (and other processes) never see half a message.
        # Made here: `Maildir(create=True)` makes only the last level, and nothing at all
        # inside a folder that already exists (an empty configured folder would fail).
        for part in ("tmp", "new", "cur"):
            (self._folder / part).mkdir(mode=0o700, parents=True, exist_ok=True)
        return mailbox.Maildir(self._folder, create=False).add(email)

    async def aclose(self) -> None:
        pass
