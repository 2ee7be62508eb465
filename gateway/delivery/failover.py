"""Several named providers of one channel behind the one transport protocol, tried in order.

A transient failure (a relay down, an account throttled) moves the send to the next provider
at once; each provider has a circuit breaker, so one that keeps failing is skipped until its
cool-down ends instead of costing every send a timeout. When every breaker is open the send
is retried later (CircuitOpenError, transient). Two outcomes stop the walk: a
permanent refusal (the message itself is wrong, another provider would refuse it too) and an
unknown outcome (the message may have left: handing it to a second provider at once could
send it twice; the outbox sends it again later, as for a single provider).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

from gateway.delivery.breaker import CircuitBreaker
from gateway.delivery.channels.base import Message, Receipt, Transport
from gateway.delivery.error_codes import readable_code
from gateway.delivery.errors import (CircuitOpenError, DeliveryError, PermanentDeliveryError, ProviderTry,
                                     TransientDeliveryError)
from gateway.observability import Metrics

log = logging.getLogger(__name__)


@dataclass
class Provider:
    name: str
    transport: Transport
    breaker: CircuitBreaker


class FailoverTransport:
    def __init__(self, channel: str, vendor: str, providers: list[Provider], metrics: Metrics) -> None:
        self.channel = channel
        self.vendor = vendor  # "smtp", "twilio": the prefix of readable error codes
        self.providers = providers
        self.metrics = metrics
        self.probe_problems: dict[str, str] = {}  # provider -> what its last probe found wrong

    @property
    def sends_receipts(self) -> bool:
        """Whether a delivery receipt may come: some provider in the chain posts them. The SMS
        fallback's "no receipt in time" waits only where one can arrive."""
        return any(getattr(p.transport, "sends_receipts", False) for p in self.providers)

    async def send(self, message: Message) -> Receipt:
        tried: list[ProviderTry] = []
        last: TransientDeliveryError | None = None
        # A breaker moves sends on to the next provider. With a single one there is no next: its
        # breaker only reports, and the outbox's backoff spaces the retries as it always did.
        skipping = len(self.providers) > 1
        for provider in self.providers:
            if skipping and not provider.breaker.allow():
                continue
            try:
                receipt = await provider.transport.send(message)
            except PermanentDeliveryError as exc:
                self._succeeded(provider)  # it answered: the provider works, the message does not
                self._count(provider, exc, "refused", tried)
                raise
            except TransientDeliveryError as exc:
                self._failed(provider)
                self._count(provider, exc, "failed_over", [])
                tried.append(ProviderTry(provider.name, str(exc)[:1000], exc.code))
                last = exc
                continue
            except DeliveryError as exc:  # the outcome is unknown: stop here, see the module's doc
                self._failed(provider)
                self._count(provider, exc, "unknown", tried)
                raise
            except BaseException:
                provider.breaker.released()
                raise
            self._succeeded(provider)
            self.metrics.child(self.metrics.provider_sends, self.channel, provider.name, "sent").inc()
            return dataclasses.replace(receipt, provider=provider.name, tried=tuple(tried))
        if last is None:
            names = ", ".join(p.name for p in self.providers)
            error = CircuitOpenError(f"every {self.channel} provider is resting after repeated failures ({names}): "
                                     "the send waits for a breaker's cool-down")
            error.tried = tried
            self.metrics.provider_failures.labels(self.channel, "-", "circuit_open").inc()
            raise error
        last.provider = tried[-1].provider
        last.tried = tried[:-1]
        raise last

    def _failed(self, provider: Provider) -> None:
        was = provider.breaker.state
        provider.breaker.failed()
        if provider.breaker.state == "open" and was != "open":
            log.warning("%s provider %s is resting after failures", self.channel, provider.name, extra={
                "action": "provider_breaker_opened", "channel": self.channel, "provider": provider.name,
                "failures": provider.breaker.failures})

    def _succeeded(self, provider: Provider) -> None:
        was = provider.breaker.state
        provider.breaker.succeeded()
        if was != "closed":
            log.info("%s provider %s works again", self.channel, provider.name, extra={
                "action": "provider_breaker_closed", "channel": self.channel, "provider": provider.name})

    def _count(self, provider: Provider, exc: DeliveryError, outcome: str, tried: list[ProviderTry]) -> None:
        self.metrics.provider_sends.labels(self.channel, provider.name, outcome).inc()
        self.metrics.provider_failures.labels(self.channel, provider.name, readable_code(exc, self.vendor)).inc()
        exc.provider = provider.name
        exc.tried = tried

    def states(self) -> dict[str, str]:
        """provider -> its breaker's state (closed, open, half_open)."""
        return {p.name: p.breaker.state for p in self.providers}

    async def probe(self) -> None:
        """Probe every provider; the channel is not ready only when none of them works."""
        names = [p.name for p in self.providers if callable(getattr(p.transport, "probe", None))]
        answers = await asyncio.gather(*(self._probe_one(p) for p in self.providers if p.name in names))
        self.probe_problems = {name: why for name, why in zip(names, answers) if why is not None}
        if names and len(self.probe_problems) == len(names):
            if len(names) == 1:  # one provider: its own words, as before there were several
                raise TransientDeliveryError(self.probe_problems[names[0]])
            raise TransientDeliveryError("; ".join(f"{name}: {why}" for name, why in self.probe_problems.items()))

    async def _probe_one(self, provider: Provider) -> str | None:
        try:
            await provider.transport.probe()  # type: ignore[attr-defined]
        except DeliveryError as exc:
            return str(exc)
        return None

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.transport.aclose()
