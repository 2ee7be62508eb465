"""TLS for tests: a self-signed certificate made with openssl, and a TLS front for the test
PostgreSQL (which has none) that speaks PostgreSQL's own upgrade (SSLRequest, then TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

SSL_REQUEST = 80877103  # PostgreSQL's SSLRequest code


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(folder: Path, name: str = "server") -> Certificate:
    """A self-signed certificate (its own CA) for 127.0.0.1 and localhost, valid two days."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return Certificate(cert, key)


class PostgresTLSFront:
    """Listens on loopback; a client asking for TLS (SSLRequest) gets 'S' and a TLS session with
    `certificate`, and what it says inside is forwarded, plain, to the real server. `tls_sessions`
    and `plain_sessions` count how clients came in."""

    def __init__(self, target_host: str, target_port: int, certificate: Certificate) -> None:
        self.target = (target_host, target_port)
        self.context = certificate.server_context()
        self.port = 0
        self.tls_sessions = self.plain_sessions = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> PostgresTLSFront:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(8)
            _length, code = struct.unpack("!II", first)
            if code == SSL_REQUEST:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.context)
                self.tls_sessions += 1
                first = b""
            else:
                self.plain_sessions += 1
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.transport.abort()
            return
        up_writer.write(first)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
