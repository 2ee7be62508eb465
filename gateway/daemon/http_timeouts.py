"""How long the HTTP server waits for a client.

aiohttp closes a connection that stays idle, or whose request head does not arrive, for
`http.keepalive_timeout` (its keep-alive timer runs from the connection's start and from
the end of each response). Nothing bounds the body: a client trickling one byte a second
would hold a connection and its handler for days. The body is therefore read whole, within
`http.read_timeout`, before the handler runs (innermost, after the key and scope checks,
so the order of refusals stays 401, 403, 413); the handler then reads it from memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.problems import problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_deadline(read_timeout: float) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(read_timeout):
                    await request.read()  # kept by aiohttp: read(), text(), json() and post() reuse it
            except TimeoutError:
                response = problem(408, f"the request body did not arrive within http.read_timeout "
                                        f"({read_timeout:g}s)")
                response.force_close()
                # Sent now, then the connection closed: aiohttp would otherwise go on reading
                # ("lingering") what the client still trickles, for another ten seconds.
                await response.prepare(request)
                await response.write_eof()
                if request.transport is not None:
                    request.transport.close()
                return response
        return await handler(request)

    return read_body_in_time
