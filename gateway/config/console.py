"""The operations console's settings (README "The operations console")."""

from __future__ import annotations

from pydantic import field_validator

from gateway.config.sections import Section
from gateway.config.units import Duration, OptionalRate

MAX_SESSION = 7 * 24 * 3600.0  # seconds: a week; a longer session outlives the person at the desk


class ConsoleSettings(Section):
    enabled: bool = True
    # A session ends this long after sign-in, whatever happens in between.
    session_ttl: Duration = 8 * 3600.0
    # Failed sign-ins per client address before 429 (gateway.web.sign_in_limits); 0 turns it off.
    sign_in_failures: OptionalRate = (10, 900.0)

    @field_validator("session_ttl")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if not 60 <= value <= MAX_SESSION:
            raise ValueError("expected a duration from 1m to 7d")
        return value
