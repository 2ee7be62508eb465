"""Error codes people can read, for metric labels: `smtp_550`, `twilio_21211`, `timeout`,
`connection_refused`; never a Python class name."""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator

from gateway.delivery.errors import (CircuitOpenError, DeliveryError, PermanentDeliveryError, TransientDeliveryError,
                                     UnknownOutcomeError)


def readable_code(exc: DeliveryError, vendor: str) -> str:
    """The provider's own code under its vendor's name, else what the network said, else the kind."""
    if exc.code:
        return f"{vendor}_{exc.code}"
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    causes = list(_causes(exc))
    # The most precise word wins wherever it sits in the chain (aiosmtplib wraps the refusal).
    for code, matches in _NETWORK:
        if any(matches(cause) for cause in causes):
            return code
    if isinstance(exc, UnknownOutcomeError):
        return "unknown_outcome"
    if isinstance(exc, PermanentDeliveryError):
        return "refused"
    return "unavailable" if isinstance(exc, TransientDeliveryError) else "error"


_NETWORK = (
    ("connection_refused", lambda e: isinstance(e, OSError) and e.errno == errno.ECONNREFUSED),
    ("timeout", lambda e: isinstance(e, TimeoutError)),
    ("tls", lambda e: isinstance(e, ssl.SSLError)),
    ("connection_lost", lambda e: isinstance(e, ConnectionError)),
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
