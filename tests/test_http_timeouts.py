"""Idle and slow connections end: the daemon (a subprocess, as a user runs it) closes a connection
that sends nothing, one whose request head trickles in a byte a second, and one whose body does.

No wall-clock reading decides anything: each test waits for the server to close the connection
and fails only if that takes longer than a bound set from the setting under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiohttp

from tests.fault_helpers import smtp_env
from tests.fakes.smtp_sink import SMTPSink
from tests.helpers import free_port
from tests.test_outages import start

TIMEOUT = 1.0  # seconds: http.keepalive_timeout and http.read_timeout in these tests
BOUND = TIMEOUT * 6  # the connection must be closed well within this


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> int:
    """Send `data` one byte a second; returns how many bytes got out before the server hung up."""
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(1.0)
    return sent


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it ended the connection.

    A server that closes while bytes the client trickled sit unread in its socket makes the kernel
    answer with a reset instead of a FIN: for these tests that is the same outcome, a closed
    connection, so the bytes received up to then are the answer.
    """
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def test_idle_and_slow_connections_are_closed(tmp_path: Path, sqlite_url: str, sink: SMTPSink) -> None:
    port = free_port()
    daemon, key = await start(tmp_path, smtp_env(sqlite_url, sink, port, GATEWAY_HTTP__KEEPALIVE_TIMEOUT=f"{TIMEOUT}s",
                                                 GATEWAY_HTTP__READ_TIMEOUT=f"{TIMEOUT}s"))
    try:
        # A prompt client is served as ever.
        async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/healthz") as r:
            assert r.status == 200

        # Idle: connected, says nothing.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(until_closed(reader), timeout=BOUND) == b""
        writer.close()

        # A request head arriving a byte a second.
        head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slow\r\n\r\n".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sending = asyncio.create_task(trickle(writer, head))
        assert await asyncio.wait_for(until_closed(reader), timeout=BOUND) == b""  # closed, nothing answered
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            assert await sending < len(head)
        writer.close()

        # A body arriving a byte a second, after a head that passes every check.
        body = json.dumps({"specversion": "1.0", "id": "slow-1", "source": "urn:test", "type": "protocol.opened",
                           "data": {"subject": "x" * 50}}).encode()
        head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/cloudevents+json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        sending = asyncio.create_task(trickle(writer, body))
        answer = await asyncio.wait_for(until_closed(reader), timeout=BOUND)  # the answer, then the end of the connection
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:300]
        assert b"application/problem+json" in rest
        problem = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert problem["type"] == "/problems/request-timeout" and "http.read_timeout" in problem["detail"]
    finally:
        assert await daemon.stop() == 0
