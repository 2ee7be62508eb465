"""The daemon's port, taken before anything else.

Binding first means a port already in use stops start-up at once, in one line naming
`http.port` (or `http.host`), before any migration runs or any sweep touches the database.
The sockets are handed to aiohttp as they are.
"""

from __future__ import annotations

import errno
import socket

from gateway.config import ConfigError, Settings

BACKLOG = 128


class CannotListen(ConfigError):
    """The configured address cannot be listened on; the message is one line naming the key."""


def bind(settings: Settings) -> list[socket.socket]:
    return _bind(settings, "http", settings.http.host, settings.http.port)


def bind_bounces(settings: Settings) -> list[socket.socket] | None:
    """The bounce listener's port (email.bounces), taken at start as the HTTP port is; None when off."""
    bounces = settings.email.bounces
    if not (bounces.domain and bounces.listen):
        return None
    return _bind(settings, "email.bounces", bounces.host, bounces.port)


def _bind(settings: Settings, section: str, host: str, port: int) -> list[socket.socket]:
    where = f"[{settings.origin(f'{section}.port')}]"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"{section}.host: cannot listen on {host!r}: {exc.strerror} "
                           f"[{settings.origin(f'{section}.host')}]") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart is not blocked by TIME_WAIT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # each family its own socket
            sock.bind(address)
            sock.listen(BACKLOG)  # listening claims the port for good (binding alone may be shared)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(f"{section}.port: {host}:{port} is already in use by another process; stop it or "
                               f"choose another port {where}") from None
        if exc.errno == errno.EACCES:
            raise CannotListen(f"{section}.port: not allowed to listen on {host}:{port} (ports under 1024 need "
                               f"privileges) {where}") from None
        raise CannotListen(f"{section}.host: cannot listen on {host}:{port}: {exc.strerror} "
                           f"[{settings.origin(f'{section}.host')}]") from None
    return sockets


def bound_port(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1])
