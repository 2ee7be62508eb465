"""Links to the consumer's page: `{http.public_url}/p/{token}`, one per protocol.

The token is 128 bits of HMAC-SHA256 over the protocol's number, keyed by a secret kept
outside the database (`consumer_page.secret`, else a file made at first use, mode 600): it
looks random, holds nothing personal and not the number, and every message about the
protocol carries the same link without the database holding the token. The database keeps
its SHA-256 only (`protocols.page_token_hash`), to find the protocol a token names. A link
stops working `consumer_page.link_ttl` after the protocol's last event, and at anonymization.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 bytes, base64url without padding


class PageLinks:
    def __init__(self, public_url: str, *, secret: str | None, secret_file: Path) -> None:
        self.base = public_url.rstrip("/") + "/p/"
        self._secret = secret.encode("utf-8") if secret is not None else None
        self._secret_file = secret_file
        # The last number's token: an opening asks for it twice (the digest its row keeps, the
        # link its messages carry), one right after the other.
        self._last: tuple[str, str] | None = None

    def token(self, number: str) -> str:
        last = self._last
        if last is not None and last[0] == number:
            return last[1]
        mac = hmac.new(self._key(), b"consumer-page:" + number.encode("ascii"), hashlib.sha256).digest()
        token = base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode("ascii")
        self._last = (number, token)
        return token

    def link(self, number: str) -> tuple[str, str]:
        """(the page's URL, what the database keeps of its token), the HMAC computed once."""
        token = self.token(number)
        return self.base + token, digest(token)

    def digest_for(self, number: str) -> str:
        return digest(self.token(number))

    def _key(self) -> bytes:
        if self._secret is None:
            self._secret = _read_or_make(self._secret_file)
        return self._secret


def digest(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: str) -> bool:
    return TOKEN.fullmatch(token) is not None


def _read_or_make(path: Path) -> bytes:
    """The secret in `path`, made (32 random bytes, hex, mode 600) when the file does not exist.
    Written whole under another name and then linked into place: of two processes starting at
    once, one's file wins and both read it, never a half-written one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    text = path.read_text("ascii").strip()
    if len(text) < 32:
        raise ValueError(f"{path}: the consumer page's secret is shorter than 32 characters")
    return text.encode("ascii")
