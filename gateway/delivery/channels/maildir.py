"""Email filed into a local Maildir: for development, demos and tests, no server needed."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import socket
import time
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path

from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.channels.email_message import build_email
from gateway.delivery.channels.local_files import FILE_MODE, private_folder, probe_folder, write_failed

_HOST = socket.gethostname().replace("/", r"\057").replace(":", r"\072")


class MaildirTransport:
    sends_receipts = False

    def __init__(self, folder: Path, sender: str) -> None:
        self._folder = folder
        self._sender = sender

    async def send(self, message: Message) -> Receipt:
        email = build_email(message, self._sender)
        try:
            key = await asyncio.to_thread(self._file, _flatten(email))  # disk I/O stays off the event loop
        except OSError as exc:
            raise write_failed(exc, self._folder) from exc
        return Receipt(provider_id=key, status="sent")

    def _folders(self) -> None:
        # All three, 0700: `mailbox.Maildir(create=True)` makes only the last level, nothing inside
        # a folder that already exists, and with the umask's modes.
        for part in ("tmp", "new", "cur"):
            private_folder(self._folder / part)

    def _file(self, data: bytes) -> str:
        # The Maildir way: written whole under tmp/, then renamed into new/ with a name unique
        # to this host, process and message, so no reader (or other process) sees half a message.
        self._folders()
        now = time.time()
        key = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}R{secrets.token_hex(8)}.{_HOST}"
        draft = self._folder / "tmp" / key
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as file:  # closing flushes: a full disk may show only then
                file.write(data)
            os.rename(draft, self._folder / "new" / key)
        except BaseException:
            draft.unlink(missing_ok=True)  # nothing half-written stays behind
            raise
        return key

    async def probe(self) -> None:
        """A message can be filed: the folders exist (or are made) and take a new file."""
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        try:
            self._folders()
        except OSError as exc:
            raise write_failed(exc, self._folder) from exc
        probe_folder(self._folder / "tmp")

    async def aclose(self) -> None:
        pass


def _flatten(email: EmailMessage) -> bytes:
    """The bytes `mailbox.Maildir.add` would write: headers unfolded as built, no From mangling."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(email)
    return buffer.getvalue()
