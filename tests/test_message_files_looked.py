"""An event's messages are rendered from one look at the template files (Templates.one_look):
each file is looked at once for all of them, and none comes from a newer file than another;
the events of one shared commit, likewise."""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime, timezone
from typing import Any

from gateway.app import Runtime
from gateway.rendering import sandbox
from gateway.store.group_commit import GroupCommit
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


def counting_looks(monkeypatch: Any) -> collections.Counter[str]:
    """From now on, how many times each file is looked at (what Jinja's up-to-date check calls)."""
    looked: collections.Counter[str] = collections.Counter()
    stamp = sandbox._stamp

    def counted(path: str) -> Any:
        looked[path] += 1
        return stamp(path)

    monkeypatch.setattr(sandbox, "_stamp", counted)
    return looked


async def test_an_events_messages_look_at_each_file_once(runtime: Runtime, monkeypatch: Any) -> None:
    messages = runtime.service.messages

    def opening(n: int) -> list[Any]:
        p = _protocol(n)
        return messages.render_each(p, "protocol_opened", [("email", p.consumer_email), ("sms", p.consumer_phone)], AT)

    opening(1)  # compiled
    looked = counting_looks(monkeypatch)
    email, sms = opening(2)
    assert email.channel == "email" and sms.channel == "sms"
    # The opening's own files and the partials both channels pull in (the SMS's "ask" sentences).
    assert any(p.endswith("sms.j2") for p in looked) and any("_partials" in p for p in looked)
    assert len(looked) >= 5 and set(looked.values()) == {1}, looked
    opening(3)  # the next event looks again
    assert set(looked.values()) == {2}


async def test_the_events_of_one_shared_commit_look_at_each_file_once(runtime: Runtime, monkeypatch: Any) -> None:
    """The service's group commit runs a batch in one look (store/group_commit.py): six openings
    queued at once share a transaction and look at each file once. A member that fails sends the
    batch again with savepoints: a look of its own."""
    messages = runtime.service.messages

    def opening(n: int, fails: bool = False) -> Any:
        def member(_session: Any) -> int:
            p = _protocol(n)
            email, sms = messages.render_each(p, "protocol_opened", [("email", p.consumer_email),
                                                                     ("sms", p.consumer_phone)], AT)
            assert p.number in email.body_text.replace(" ", "") and sms.body_text  # each its own (grouped)
            if fails:
                raise ValueError("refused after rendering")
            return n
        return member

    assert runtime.service.commits.shared == messages.templates.one_look  # what the service's commits share
    commits = GroupCommit(runtime.db, in_flight=1, shared=messages.templates.one_look)
    await commits.run(opening(0))  # compiled
    looked = counting_looks(monkeypatch)
    compiled: list[tuple[str, ...]] = []
    version = messages.templates._version
    monkeypatch.setattr(messages.templates, "_version", lambda *key: compiled.append(key) or version(*key))
    assert await asyncio.gather(*(commits.run(opening(n)) for n in range(1, 7))) == [1, 2, 3, 4, 5, 6]
    assert commits.transactions == 2  # the warm-up, then the six together
    assert len(looked) >= 5 and set(looked.values()) == {1}, looked
    # And each channel's template is put together once for the six (its files and their hash).
    assert sorted(compiled) == [("protocol_opened", "pt-BR", "email"), ("protocol_opened", "pt-BR", "sms")]

    looked.clear()
    results = await asyncio.gather(*(commits.run(opening(n, fails=n == 9)) for n in range(7, 13)),
                                   return_exceptions=True)
    assert isinstance(results[2], ValueError) and [r for r in results if not isinstance(r, Exception)] == [
        7, 8, 10, 11, 12]
    assert commits.transactions == 3
    assert set(looked.values()) == {2}, looked  # the batch, then the batch again with savepoints
