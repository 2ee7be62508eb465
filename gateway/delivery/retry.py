"""Retry decisions as data: what happens to a notification after a failed send."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.delivery.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError

JITTER = 0.2  # up to 20 % shorter than the nominal delay, so retries of a burst spread out


@dataclass(frozen=True)
class Decision:
    status: str                        # "queued" (retry), "unknown", "failed" or "dead"
    next_attempt_at: datetime | None   # when to try again, for "queued" and "unknown"


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 5.0            # seconds before the first retry
    cap: float = 300.0           # the longest wait between two tries
    give_up_after: float = 86400.0
    unknown_retry_after: float = 600.0
    rand: Callable[[], float] = random.random

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed try (1-based)."""
        nominal = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return nominal * (1 - JITTER * self.rand())

    def decide(self, error: DeliveryError, *, attempts: int, created_at: datetime, now: datetime) -> Decision:
        if isinstance(error, PermanentDeliveryError):
            return Decision("failed", None)
        expired = now - created_at >= timedelta(seconds=self.give_up_after)
        if isinstance(error, UnknownOutcomeError):
            # Sent again later unless a receipt settles it first: a legal notice may
            # arrive twice, never zero times. Past give-up it is dead and shown to operations.
            if expired:
                return Decision("dead", None)
            return Decision("unknown", now + timedelta(seconds=self.unknown_retry_after))
        if expired:
            return Decision("dead", None)
        wait = self.delay(attempts)
        if isinstance(error, TransientDeliveryError) and error.retry_after:
            wait = max(wait, min(error.retry_after, self.give_up_after))
        return Decision("queued", now + timedelta(seconds=wait))
