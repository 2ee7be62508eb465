"""A light SMTP sink in a process of its own: real aiosmtpd, no parsing, only counting.

The test fake (tests/fakes/smtp_sink.py) parses every message and runs in a thread of the
test's process; in a benchmark that would put the sink's CPU under the same GIL as the
code being measured. Here the sink has its own interpreter (the second core, when free),
and it does the least a server can: accept, count, answer 250. The gateway and the raw
aiosmtplib baseline send to the same sink, so both pay the same server cost.

With `record=True` (the end-to-end and multi-process scenarios) it also notes, for each
message, its Message-ID (found with one regular expression over the header bytes, not a
parse) and the wall-clock time (`time.time()`) of its acceptance, just before the 250.
The gateway's Message-ID is `<notification-ID.INSTALLATION@domain>`, so the bench can match each
acceptance to the POST that queued the notification, or count duplicates.

    async with SinkProcess(record=True) as sink:   # sink.host, sink.port
        before = await sink.count()
        arrivals = await sink.dump()               # [(message_id, accepted_at)], then forgotten

Run alone: `python -m bench.sink [--record]` prints `port N`, then answers `count` on stdin
with `count MESSAGES BYTES` and `dump` with `dump [[MESSAGE_ID, TIME], ...]`; end of input
stops it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

from bench.child import HOST, ChildServer, answer_commands

# The header block only: a body line starting "Message-ID:" must not count.
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
HEADER_END = b"\r\n\r\n"


def message_id_of(content: bytes) -> str:
    head = content.split(HEADER_END, 1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace") if found else ""


class CountingHandler:
    def __init__(self, record: bool = False, refuse: str | None = None) -> None:
        self.refuse = refuse  # a reply to every RCPT ("451 4.3.0 try later"): a relay that refuses all
        self.refused = 0
        self.messages = 0
        self.bytes = 0
        self.record = record
        self.arrivals: list[tuple[str, float]] = []

    async def handle_RCPT(self, server: object, session: object, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.refuse:
            self.refused += 1
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = getattr(envelope, "original_content", None) or b""
        self.messages += 1
        self.bytes += len(content)
        if self.record:
            self.arrivals.append((message_id_of(content), time.time()))
        return "250 OK queued"

    def dump(self) -> str:
        taken, self.arrivals = self.arrivals, []
        return json.dumps(taken)


async def serve(record: bool, refuse: str | None = None) -> None:
    from aiosmtpd.smtp import SMTP

    handler = CountingHandler(record, refuse)
    loop = asyncio.get_running_loop()
    # hostname given: aiosmtpd would otherwise ask DNS for this machine's name.
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.bench", ident="bench-sink"), HOST, 0)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await answer_commands({"count": lambda: f"{handler.messages} {handler.bytes}", "dump": handler.dump,
                           "refused": lambda: str(handler.refused)})
    server.close()


class SinkProcess(ChildServer):
    module = "bench.sink"

    def __init__(self, *, record: bool = False, refuse: str | None = None) -> None:
        super().__init__(*(["--record"] if record else []), *(["--refuse", refuse] if refuse else []))

    async def __aenter__(self) -> SinkProcess:
        await super().__aenter__()
        return self

    async def dump(self) -> list[tuple[str, float]]:
        """(Message-ID, accepted at) of each message accepted since the last dump (record=True only)."""
        return [(mid, at) for mid, at in json.loads(await self.ask("dump"))]


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(serve("--record" in args, args[args.index("--refuse") + 1] if "--refuse" in args else None))
