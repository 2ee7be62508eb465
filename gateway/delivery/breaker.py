"""A circuit breaker per provider: stop calling a relay or an account that keeps failing.

Closed: every send goes. After `failures` failures in a row it opens: sends skip the
provider (the failover moves them on at once, rather than waiting for a timeout each).
`cooldown` after it opened, one send is let through (half-open): its success closes the
breaker, its failure opens it for another cool-down. Time comes from the clock passed in,
so tests move it instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failures: int, cooldown: float, clock: Callable[[], datetime]) -> None:
        self.threshold = failures
        self.cooldown = timedelta(seconds=cooldown)
        self.clock = clock
        self.failures = 0  # in a row
        self.opened_at: datetime | None = None
        self._probing = False  # the one half-open send is in flight

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a send go to this provider now? Half-open lets exactly one through at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def failed(self) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self._probing = False

    def released(self) -> None:
        """A half-open send ended without a verdict on the provider (the outcome is unknown)."""
        self._probing = False
