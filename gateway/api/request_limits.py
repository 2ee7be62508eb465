"""Requests per API key (`limits.requests_per_key`), so one misbehaving upstream cannot starve the others.

A bucket per key name holding `limit` requests, refilled at `limit` per `window` (the generic
cell rate algorithm: one number per key, the time the bucket would be full again). A key that
empties it gets 429 with `Retry-After`, the seconds until one more request fits. Counted in
this process's memory: N gateway processes behind a balancer let a key make N times as many.
Time is the runtime's clock, so a test moves it instead of waiting.
"""

from __future__ import annotations

import math
from datetime import datetime

from aiohttp import web

from gateway.api.problems import Problem
from gateway.api.runtime_keys import CLOCK, SETTINGS


class KeyRateLimiter:
    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.interval = window / limit  # seconds one request takes from the bucket
        self._full_at: dict[str, float] = {}  # key name -> when its bucket is full again (epoch seconds)

    def hit(self, key: str, now: datetime) -> float | None:
        """Take one request for `key`: None when it fits, else the seconds until one would."""
        at = now.timestamp()
        full_at = max(self._full_at.get(key, at), at) + self.interval
        wait = full_at - self.window - at
        if wait > 0:
            return wait
        self._full_at[key] = full_at
        return None


LIMITER = web.AppKey("request_limiter", KeyRateLimiter)


async def build_limiter(app: web.Application) -> None:
    """On start-up (the settings are on the app by then, and the app is not yet frozen)."""
    rate = app[SETTINGS].limits.requests_per_key
    if rate is not None:
        app[LIMITER] = KeyRateLimiter(*rate)


def check(request: web.Request, key_name: str) -> None:
    limiter = request.app.get(LIMITER)
    if limiter is None:
        return
    wait = limiter.hit(key_name, request.app[CLOCK]())
    if wait is not None:
        retry_after = max(1, math.ceil(wait))
        raise Problem(429, f"this key made more than {limiter.limit} requests in {limiter.window:g} s "
                           f"(limits.requests_per_key); retry in {retry_after} s",
                      headers={"Retry-After": str(retry_after)})
