"""Free space under what the gateway writes: the SQLite database and the file transports.

A full disk under SQLite makes every request a 503 and under the Maildir or the SMS file
holds every message back; /readyz says so before it happens, when the free space of a
folder drops under `http.readyz_min_free`.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import Settings
from gateway.store.database import sqlite_path


def watched_folders(settings: Settings) -> dict[str, Path]:
    """What writes where: the database (SQLite), email (Maildir), sms (the SMS file)."""
    folders: dict[str, Path] = {}
    database = sqlite_path(settings.database_url) if settings.database.is_sqlite else None
    if database is not None:
        folders["database"] = database.parent
    if settings.email.transport == "maildir":
        folders["email"] = settings.path(settings.email.maildir)
    if settings.sms.transport == "file":
        folders["sms"] = settings.path(settings.sms.file).parent
    if settings.whatsapp.transport == "file":
        folders["whatsapp"] = settings.path(settings.whatsapp.file).parent
    return folders


def free_bytes(folder: Path) -> int:
    """Free space for this (unprivileged) process under `folder`, or its nearest existing parent."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    stats = os.statvfs(existing)
    return stats.f_bavail * stats.f_frsize


def low_space(settings: Settings) -> str | None:
    """None when every watched folder has at least `http.readyz_min_free`; else what is short."""
    least = settings.http.readyz_min_free
    short = []
    for name, folder in watched_folders(settings).items():
        free = free_bytes(folder)
        if free < least:
            short.append(f"{name} {folder}: {_size(free)} free, under http.readyz_min_free ({_size(least)})")
    return "; ".join(short) or None


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - the loop returns
