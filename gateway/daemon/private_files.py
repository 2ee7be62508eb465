"""Files and folders that hold personal data are the owner's alone, whatever the umask.

The daemon sets its umask to 0077 at start, the transports and the database create their
paths with explicit modes (0600 files, 0700 folders), and at start the paths the settings
name are checked: a looser mode left by an older version or by hand is narrowed, with a
warning naming the path. Only regular files and folders are touched (never /dev/full or a
named pipe a test or an operator points a setting at), and a folder the settings merely
sit in (the database's `var/`, `/tmp`) is left alone: its files are what is private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from gateway.config import Settings
from gateway.store.database import sqlite_path

log = logging.getLogger("gateway.files")

PRIVATE_UMASK = 0o077
FILE_MODE, DIR_MODE = 0o600, 0o700


def private_paths(settings: Settings) -> list[Path]:
    """Every path the settings name that holds personal data or a secret."""
    paths: list[Path] = []
    database = sqlite_path(settings.database_url) if settings.database.is_sqlite else None
    if database is not None:
        paths += [database, Path(f"{database}-wal"), Path(f"{database}-shm"), Path(f"{database}-journal")]
    maildir = settings.path(settings.email.maildir)
    paths += [maildir, *(maildir / part for part in ("tmp", "new", "cur")), settings.path(settings.sms.file),
              settings.path(settings.whatsapp.file)]
    if settings.auth.bootstrap_key_file is not None:
        paths.append(settings.path(settings.auth.bootstrap_key_file))
    if settings.consumer_page.enabled and settings.consumer_page.secret is None:
        paths.append(settings.path(settings.consumer_page.secret_file))  # whoever reads it can make every link
    return paths


def narrow_modes(paths: list[Path]) -> list[Path]:
    """Take group and other bits off each existing file (0600) and folder (0700); returns those changed."""
    changed = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:  # not there (yet): it will be made private when it is made
            continue
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 == 0:
            continue
        wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
        try:
            os.chmod(path, wanted)
        except OSError as exc:
            log.warning("cannot narrow a private file's mode", extra={
                "action": "file_mode_unfixed", "path": str(path), "mode": oct(mode), "error": exc.strerror})
            continue
        log.warning("a file with personal data was readable by others; narrowed", extra={
            "action": "file_mode_fixed", "path": str(path), "was": oct(mode), "now": oct(wanted)})
        changed.append(path)
    return changed


def keep_private(settings: Settings) -> list[Path]:
    """The daemon's start: a private umask for everything it creates, and the known paths narrowed."""
    os.umask(PRIVATE_UMASK)
    return narrow_modes(private_paths(settings))
