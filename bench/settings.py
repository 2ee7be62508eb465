"""Gateway settings for a benchmark run: its own folder and database, no environment leaking in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import Settings, load_settings

SENDER = "Atendimento <atendimento@example.com>"
REPLY_TO = "sac@example.com"


def bench_settings(folder: Path, db_url: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, Any] = {
        "database": {"url": db_url},
        "email": {"maildir": str(folder / "mail"), "from": SENDER, "reply_to": REPLY_TO},
        "sms": {"file": str(folder / "sms.jsonl")},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(environ={}, discover=False, overrides=base)
