"""A light SMTP sink in a process of its own: real aiosmtpd, no parsing, only counting.

The test fake (tests/fakes/smtp_sink.py) parses every message and runs in a thread of the
test's process; in a benchmark that would put the sink's CPU under the same GIL as the
code being measured. Here the sink has its own interpreter (the second core, when free),
and it does the least a server can: accept, count, answer 250. The gateway and the raw
aiosmtplib baseline send to the same sink, so both pay the same server cost.

    async with SinkProcess() as sink:   # sink.host, sink.port
        before = await sink.count()

Run alone: `python -m bench.sink` prints `port N`, then answers `count` on stdin with
`count MESSAGES BYTES`; end of input stops it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for the child to import aiosmtpd and listen


class CountingHandler:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages += 1
        self.bytes += len(getattr(envelope, "original_content", None) or b"")
        return "250 OK queued"


async def serve() -> None:
    from aiosmtpd.smtp import SMTP

    handler = CountingHandler()
    loop = asyncio.get_running_loop()
    # hostname given: aiosmtpd would otherwise ask DNS for this machine's name.
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.bench", ident="bench-sink"), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"port {port}", flush=True)
    while line := await reader.readline():
        if line.strip() == b"count":
            print(f"count {handler.messages} {handler.bytes}", flush=True)
    server.close()


class SinkProcess:
    host = HOST

    def __init__(self) -> None:
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SinkProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT)
        if not line.startswith(b"port "):
            await self._proc.wait()
            raise RuntimeError(f"the SMTP sink did not start (exit {self._proc.returncode})")
        self.port = int(line.split()[1])
        return self

    async def count(self) -> tuple[int, int]:
        """Messages and bytes accepted so far."""
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(b"count\n")
        await self._proc.stdin.drain()
        _, messages, size = (await self._proc.stdout.readline()).split()
        return int(messages), int(size)

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


if __name__ == "__main__":
    asyncio.run(serve())
