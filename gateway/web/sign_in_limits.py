"""Failed console sign-ins per client address (`console.sign_in_failures`, default 10 in 15 minutes).

Without a limit, anyone who can reach /console/sign-in may try keys as fast as the gateway
answers. A failed attempt takes one from its address's bucket (the same cell-rate bucket as
requests per key); an address whose bucket is empty gets 429 with `Retry-After` and its key is
not even looked at, so a guesser learns nothing more until then. A successful sign-in spends
nothing. IPv6 clients are counted by their /64, which one machine usually holds whole. Counted in
this process's memory, on the runtime's clock: N processes allow N times as many, a restart
forgets. Behind a reverse proxy every client has the proxy's address (the gateway does not read
X-Forwarded-For, which any client can write), so limit sign-ins at the proxy there.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime

from aiohttp import web

from gateway.api.request_limits import KeyRateLimiter

LIMITER = web.AppKey("sign_in_limiter", KeyRateLimiter)
IPV6_PREFIX = 64


def build(app: web.Application, rate: tuple[int, float] | None) -> None:
    if rate is not None:
        app[LIMITER] = KeyRateLimiter(*rate)


def client(remote: str | None) -> str:
    """The address a failure is counted against (`request.remote`)."""
    remote = remote or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote  # a Unix socket or the like: one bucket for all of it
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def blocked(request: web.Request, now: datetime) -> int | None:
    """The seconds (Retry-After) until this client may try again, or None when it may now."""
    limiter = request.app.get(LIMITER)
    wait = limiter.wait(client(request.remote), now) if limiter is not None else None
    return max(1, math.ceil(wait)) if wait is not None else None


def failed(request: web.Request, now: datetime) -> None:
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        limiter.hit(client(request.remote), now)
