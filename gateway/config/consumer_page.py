"""The consumer's page settings (README "The consumer's page")."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator

from gateway.config.sections import Section
from gateway.config.units import Duration


class ConsumerPageSettings(Section):
    enabled: bool = True
    # A link stops working this long after the protocol's last event (and at anonymization).
    link_ttl: Duration = 90 * 86400.0
    # The key the links' tokens are derived from. Unset: the file below, made at first use
    # (mode 600). Every process of one gateway must share it; changing it changes every link.
    secret: SecretStr | None = None
    secret_file: Path = Path("var/consumer-page.key")

    @field_validator("link_ttl")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value < 3600:
            raise ValueError("expected a duration of at least 1h")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value
