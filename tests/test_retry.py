"""Retry decisions, as a table of cases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.delivery.errors import PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError
from gateway.delivery.retry import RetryPolicy

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
NO_JITTER = RetryPolicy(base=5, cap=300, give_up_after=86400, unknown_retry_after=600, rand=lambda: 0.0)
FULL_JITTER = RetryPolicy(base=5, cap=300, give_up_after=86400, unknown_retry_after=600, rand=lambda: 0.999999)


@pytest.mark.parametrize(
    ("error", "attempts", "age", "status", "wait"),
    [
        (TransientDeliveryError("451"), 1, 0, "queued", 5),
        (TransientDeliveryError("451"), 2, 10, "queued", 10),
        (TransientDeliveryError("451"), 3, 30, "queued", 20),
        (TransientDeliveryError("451"), 7, 600, "queued", 300),       # 5 * 2**6 = 320, capped
        (TransientDeliveryError("451"), 50, 3600, "queued", 300),     # no overflow on many tries
        (TransientDeliveryError("429", retry_after=120), 1, 0, "queued", 120),  # Retry-After wins
        (TransientDeliveryError("429", retry_after=1), 3, 0, "queued", 20),     # ...but never shortens
        (TransientDeliveryError("451"), 3, 86400, "dead", None),
        (PermanentDeliveryError("550"), 1, 0, "failed", None),
        (UnknownOutcomeError("timeout"), 1, 0, "unknown", 600),
        (UnknownOutcomeError("timeout"), 1, 86400, "dead", None),
    ],
)
def test_decisions(error, attempts, age, status, wait):
    created = T0 - timedelta(seconds=age)
    decision = NO_JITTER.decide(error, attempts=attempts, created_at=created, now=T0)
    assert decision.status == status
    assert decision.next_attempt_at == (None if wait is None else T0 + timedelta(seconds=wait))


def test_jitter_shortens_by_at_most_20_percent():
    assert 0.8 * 5 <= FULL_JITTER.delay(1) < 5
    assert 0.8 * 300 <= FULL_JITTER.delay(20) < 300
