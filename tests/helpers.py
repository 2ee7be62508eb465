"""Plain helpers for tests: settings, keys, sample events."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import event

from gateway.api import keys
from gateway.app import Runtime
from gateway.config import Settings, load_settings

_names = itertools.count()


def make_settings(tmp_path: Path, db_url: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: its own folder, its database, no environment leaking in."""
    base: dict[str, Any] = {
        "database": {"url": db_url},
        "email": {"maildir": str(tmp_path / "mail"), "from": "Atendimento <atendimento@example.com>",
                  "reply_to": "sac@example.com"},
        "sms": {"file": str(tmp_path / "sms.jsonl")},
        "whatsapp": {"file": str(tmp_path / "whatsapp.jsonl")},
        "dispatch": {"poll_interval": "50ms"},
        # The links' secret is made at first use: in the test's folder, never the working directory.
        "consumer_page": {"secret_file": str(tmp_path / "consumer-page.key")},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(environ={}, discover=False, overrides=base)


async def admin_key(runtime: Runtime, scopes: list[str] | None = None, name: str | None = None) -> str:
    return await keys.create_key(runtime.db, name or f"test-{next(_names)}", scopes or ["admin"],
                                 now=datetime.now(timezone.utc))


async def handle_event(runtime: Runtime, event_id: str, event_type: str, *, received_at: datetime,
                       **data: Any) -> dict[str, Any]:
    """Post an event of any type straight to the service (as the gateway's own caller); its answer's body."""
    from gateway.protocols.schemas import EVENT_DATA
    from gateway.protocols.service import IncomingEvent

    outcome = await runtime.service.handle(IncomingEvent(
        source="urn:test:crm", id=event_id, type=event_type, time=None,
        data=EVENT_DATA[event_type].model_validate(data)), received_at=received_at)
    return outcome.body


def opened_event(event_id: str = "evt-1", **data: Any) -> dict[str, Any]:
    """A valid protocol.opened in structured mode; `data` keys override the sample's."""
    body: dict[str, Any] = {
        "subject": "Cobrança indevida na fatura de outubro",
        "channel": "phone",
        "consumer": {"name": "Maria Silva", "email": "maria@example.com", "phone": "+5511987654321"},
    }
    body.update(data)
    return {"specversion": "1.0", "id": event_id, "source": "urn:test:crm", "type": "protocol.opened",
            "time": "2026-11-22T14:43:00Z", "data": body}



class FixedClock:
    """The clock a test gives the gateway: it says `now` until the test moves it."""

    def __init__(self, now: datetime) -> None:
        assert now.utcoffset() is not None, "a clock tells aware times"
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message_sid(label: str) -> str:
    """A Twilio message SID as Twilio issues them (SM and 32 hex digits), named by a test's label."""
    return "SM" + hashlib.md5(label.encode(), usedforsecurity=False).hexdigest()


async def notifications_where(runtime: Runtime, **where: Any) -> list[Any]:
    """The runtime's notifications, oldest first, whose columns equal `where` (channel="sms", ...)."""
    from sqlalchemy import select

    from gateway.store.models import Notification

    async with runtime.db.read() as session:
        query = select(Notification).order_by(Notification.id)
        for column, value in where.items():
            query = query.where(getattr(Notification, column) == value)
        return list((await session.scalars(query)).all())


@contextlib.contextmanager
def statements_through_the_core(engine: Any) -> Iterator[list[str]]:
    """The statements SQLAlchemy's execution sends on `engine` while the block runs (their first
    three words, upper case): what went straight to a driver is not among them."""
    executed: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        executed.append(" ".join(statement.split()[:3]).upper())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield executed
    finally:
        event.remove(engine, "before_cursor_execute", seen)
