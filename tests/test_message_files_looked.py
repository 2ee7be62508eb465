"""An event's messages are rendered from one look at the template files (Templates.one_look):
each file is looked at once for all of them, and none comes from a newer file than another."""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from typing import Any

from gateway.app import Runtime
from gateway.rendering import sandbox
from gateway.store.models import Protocol

AT = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)


def _protocol(n: int) -> Protocol:
    return Protocol(
        id=n, number=f"20261122{n:08d}", issued_by="gateway", status="open", subject="Cobrança indevida",
        category=None, profile="br-sac-2022", channel="phone", consumer_name="Maria Silva",
        consumer_email=f"cliente{n}@example.com", consumer_phone="+5511987654321", consumer_whatsapp=None,
        consumer_locale="pt-BR", consumer_timezone="America/Sao_Paulo", extra=None, opened_at=AT, received_at=AT,
        deadline_at=AT, legal_hold=False, updated_at=AT, last_event_at=AT, notify="email,sms", parent_id=None,
        page_token_hash=None,
    )


async def test_an_events_messages_look_at_each_file_once(runtime: Runtime, monkeypatch: Any) -> None:
    messages = runtime.service.messages
    looked: collections.Counter[str] = collections.Counter()
    stamp = sandbox._stamp

    def counted(path: str) -> Any:
        looked[path] += 1
        return stamp(path)

    def opening(n: int) -> list[Any]:
        p = _protocol(n)
        return messages.render_each(p, "protocol_opened", [("email", p.consumer_email), ("sms", p.consumer_phone)], AT)

    opening(1)  # compiled
    monkeypatch.setattr(sandbox, "_stamp", counted)  # what Jinja's up-to-date check calls, file by file
    email, sms = opening(2)
    assert email.channel == "email" and sms.channel == "sms"
    # The opening's own files and the partials both channels pull in (the SMS's "ask" sentences).
    assert any(p.endswith("sms.j2") for p in looked) and any("_partials" in p for p in looked)
    assert len(looked) >= 5 and set(looked.values()) == {1}, looked
    opening(3)  # the next event looks again
    assert set(looked.values()) == {2}
