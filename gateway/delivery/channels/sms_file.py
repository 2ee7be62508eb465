"""SMS appended as JSON lines to a local file: for development, demos and tests."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

from gateway.delivery.channels.base import Message, Receipt


class SMSFileTransport:
    sends_receipts = False  # a line in a file: nothing reports back

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()  # one writer at a time, so lines never interleave

    async def send(self, message: Message) -> Receipt:
        line = json.dumps(
            {
                "id": message.notification_id,
                "to": message.to,
                "body": message.text,
                "at": datetime.now(timezone.utc).isoformat(),
                "status_callback": message.status_callback,
            },
            ensure_ascii=False,
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line + "\n")
        return Receipt(provider_id=f"file-{message.notification_id}", status="sent")

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()  # a reader tailing the file sees each SMS as soon as it is "sent"

    async def aclose(self) -> None:
        pass
