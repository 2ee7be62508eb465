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
    """Also the console's failed sign-ins per client address (gateway.web.sign_in_limits)."""

    def __init__(self, limit: int, window: float, *, max_tracked: int = 100_000) -> None:
        self.limit, self.window = limit, window
        self.interval = window / limit  # seconds one request takes from the bucket
        self._full_at: dict[str, float] = {}  # key name -> when its bucket is full again (epoch seconds)
        self.max_tracked = max_tracked  # keys remembered before the full buckets are forgotten

    def wait(self, key: str, now: datetime) -> float | None:
        """None when one more would fit for `key`, else the seconds until one would; takes nothing."""
        at = now.timestamp()
        wait = max(self._full_at.get(key, at), at) + self.interval - self.window - at
        return wait if wait > 0 else None

    def hit(self, key: str, now: datetime) -> float | None:
        """Take one request for `key`: None when it fits, else the seconds until one would."""
        wait = self.wait(key, now)
        if wait is not None:
            return wait
        at = now.timestamp()
        if key not in self._full_at and len(self._full_at) >= self.max_tracked:
            # A full bucket says nothing the absence of one would not: forget those (the keys are
            # the callers' to choose, e.g. client addresses, so this table must not grow without end).
            self._full_at = {k: t for k, t in self._full_at.items() if t > at}
        self._full_at[key] = max(self._full_at.get(key, at), at) + self.interval
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
