"""What the file transports (Maildir, SMS file) share: private modes, and write errors said
as delivery errors.

Their files hold personal data, so folders are made 0700 and files 0600 whatever the umask.
A write that fails leaves nothing behind (the transports remove or truncate what they began),
so every failure is transient: a full disk (ENOSPC, a quota EDQUOT, a file-size limit EFBIG)
or a folder made read-only will pass once an operator frees space, and nothing left, so the
outcome is known, never `unknown`.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from gateway.delivery.errors import TransientDeliveryError

FILE_MODE, DIR_MODE = 0o600, 0o700
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def private_folder(folder: Path) -> None:
    """Make `folder` (and missing parents) for the owner alone; an existing one is left as it is."""
    if folder.is_dir():
        return
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another writer made it meanwhile
            continue
        os.chmod(path, DIR_MODE)  # the umask only removes bits; this says exactly which


def write_failed(exc: OSError, path: Path) -> TransientDeliveryError:
    code = errno.errorcode.get(exc.errno or 0)
    if exc.errno in DISK_FULL:
        return TransientDeliveryError(f"disk full: cannot write {path}: {exc.strerror}; nothing was kept, "
                                      "it goes again once there is space", code=code)
    return TransientDeliveryError(f"cannot write {path}: {exc.strerror or exc}", code=code)


def probe_folder(folder: Path) -> None:
    """Raise a TransientDeliveryError unless a file can be created in `folder` (made if missing)."""
    # A name of its own per probe: the SMS and WhatsApp files share var/, and their probes run at once.
    probe = folder / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        private_folder(folder)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise write_failed(exc, folder) from exc
