"""What a send can end in, besides a receipt: the one small error tree of delivery.

Every transport translates its vendor's exceptions into these, at the edge (`raise ... from
exc`), so the retry policy decides from three facts only: try again, give up, or the outcome
is not known. They live apart from the transports so that the policy knows no transport.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderTry:
    """One provider that failed within a send, before the next one was tried."""

    provider: str
    error: str
    error_code: str | None


class DeliveryError(Exception):
    """Base of every error a transport raises."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # the provider's own code ("550", "21211"), for the record
        self.provider: str | None = None  # the named relay or account that said it (set by the failover)
        self.tried: list[ProviderTry] = []  # the providers that failed before, in this same send


class TransientDeliveryError(DeliveryError):
    """Nothing was delivered and trying again later may work (4xx, 5xx of an API, refused connection)."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it said


class PermanentDeliveryError(DeliveryError):
    """The provider refused this message for good (SMTP 5xx, Twilio 21211): do not try again."""


class UnknownOutcomeError(DeliveryError):
    """The call timed out after the message may have left: it may or may not have been sent."""


class CircuitOpenError(TransientDeliveryError):
    """Every provider of the channel is resting after repeated failures: nothing was tried."""
