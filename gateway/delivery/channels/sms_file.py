"""SMS appended as JSON lines to a local file: for development, demos and tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.channels.local_files import FILE_MODE, private_folder, probe_folder, write_failed


class SMSFileTransport:
    sends_receipts = False  # a line in a file: nothing reports back

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()  # one writer at a time, so lines never interleave

    def _record(self, message: Message) -> dict[str, object]:
        return {
            "id": message.notification_id,
            "to": message.to,
            "body": message.text,
            "at": datetime.now(timezone.utc).isoformat(),
            "status_callback": message.status_callback,
        }

    async def send(self, message: Message) -> Receipt:
        line = json.dumps(self._record(message), ensure_ascii=False)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, (line + "\n").encode("utf-8"))
            except OSError as exc:
                raise write_failed(exc, self._path) from exc
        return Receipt(provider_id=f"file-{message.notification_id}", status="sent")

    def _append(self, data: bytes) -> None:
        private_folder(self._path.parent)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:  # unbuffered: a reader tailing the file sees each SMS once it is "sent"
                    view = view[os.write(fd, view):]
            except OSError:
                with contextlib.suppress(OSError):  # a device (/dev/full) cannot be truncated
                    os.ftruncate(fd, size)  # no half line left for the next SMS to run into
                raise
        finally:
            os.close(fd)

    async def probe(self) -> None:
        """The file can be appended to (its folder is made if missing)."""
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        if self._path.exists():
            try:
                os.close(os.open(self._path, os.O_WRONLY | os.O_APPEND))
            except OSError as exc:
                raise write_failed(exc, self._path) from exc
        else:
            probe_folder(self._path.parent)

    async def aclose(self) -> None:
        pass
