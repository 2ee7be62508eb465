"""The email, SMS and WhatsApp transports the settings ask for: SMTP relays and Twilio accounts, each
named, behind a failover with a circuit breaker per provider; or the local files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.config import Settings
from gateway.delivery.breaker import CircuitBreaker
from gateway.delivery.channels.base import Transport
from gateway.delivery.channels.factory import build_email_transport, build_sms_transport, build_whatsapp_transport
from gateway.delivery.failover import FailoverTransport, Provider
from gateway.observability import Metrics


def build_transports(settings: Settings, metrics: Metrics, clock: Callable[[], datetime]) -> dict[str, Transport]:
    return {"email": _email(settings, metrics, clock), "sms": _sms(settings, metrics, clock),
            "whatsapp": _whatsapp(settings, metrics, clock)}


def _breaker(settings: Settings, clock: Callable[[], datetime]) -> CircuitBreaker:
    return CircuitBreaker(failures=settings.dispatch.breaker_failures, cooldown=settings.dispatch.breaker_cooldown,
                          clock=clock)


def _email(settings: Settings, metrics: Metrics, clock: Callable[[], datetime]) -> Transport:
    if settings.email.transport != "smtp":
        return build_email_transport(settings)
    from gateway.delivery.channels.dkim_signer import DKIMSigner  # imported only when chosen
    from gateway.delivery.channels.smtp import SMTPTransport

    dkim = settings.email.dkim
    signer = None
    if dkim.enabled:  # a key file others may read stops start-up here, in one line
        assert dkim.selector and dkim.domain and dkim.private_key_file
        signer = DKIMSigner(dkim.selector, dkim.domain, settings.path(dkim.private_key_file))
    providers = [Provider(relay.name, SMTPTransport(relay, settings.email.sender, signer=signer),
                          _breaker(settings, clock))
                 for relay in settings.email.relays]
    return FailoverTransport("email", "smtp", providers, metrics)


def _sms(settings: Settings, metrics: Metrics, clock: Callable[[], datetime]) -> Transport:
    if settings.sms.transport != "twilio":
        return build_sms_transport(settings)
    from gateway.delivery.channels.twilio import TwilioTransport  # the SDK is slow to import

    providers = [Provider(account.name, TwilioTransport(account), _breaker(settings, clock))
                 for account in settings.sms.accounts]
    return FailoverTransport("sms", "twilio", providers, metrics)


def _whatsapp(settings: Settings, metrics: Metrics, clock: Callable[[], datetime]) -> Transport:
    if settings.whatsapp.transport != "twilio":
        return build_whatsapp_transport(settings)
    from gateway.delivery.channels.twilio import TwilioTransport

    providers = [Provider(account.name, TwilioTransport(account, channel="whatsapp"), _breaker(settings, clock))
                 for account in settings.whatsapp_accounts]
    return FailoverTransport("whatsapp", "twilio", providers, metrics)


def provider_states(transports: dict[str, Transport]) -> dict[str, dict[str, str]]:
    """channel -> provider -> breaker state, for the channels that have named providers."""
    return {channel: t.states() for channel, t in transports.items() if isinstance(t, FailoverTransport)}


def provider_probe_problems(transports: dict[str, Transport]) -> dict[str, dict[str, str]]:
    return {channel: dict(t.probe_problems) for channel, t in transports.items() if isinstance(t, FailoverTransport)}
