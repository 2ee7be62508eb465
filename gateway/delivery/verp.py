"""Return paths unique to each email (VERP), that nobody can forge for another notification.

`bounces+n123.k3xq...@bounce.example.com`: the notification's id and an HMAC of it under a
key only the gateway knows. A bounce reaches the listener addressed to this path; a path
whose token does not match (a guess, or another notification's id with a copied token) is
refused at RCPT, so a stranger cannot mark someone's notification undelivered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

TOKEN_CHARS = 16  # base32: 80 bits of the HMAC


class ReturnPaths:
    def __init__(self, domain: str, secret: str, local_part: str = "bounces") -> None:
        self.domain = domain.lower()
        self.local_part = local_part
        self._key = secret.encode()
        self._pattern = re.compile(
            rf"^{re.escape(local_part)}\+n(\d{{1,18}})\.([a-z2-7]{{{TOKEN_CHARS}}})@{re.escape(self.domain)}$")

    def _token(self, notification_id: int) -> str:
        digest = hmac.new(self._key, f"notification:{notification_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:TOKEN_CHARS]

    def for_notification(self, notification_id: int) -> str:
        return f"{self.local_part}+n{notification_id}.{self._token(notification_id)}@{self.domain}"

    def notification_of(self, address: str) -> int | None:
        """The notification a return path names, or None when it is not one of ours or is forged."""
        match = self._pattern.fullmatch(address.strip().strip("<>").lower())
        if match is None:
            return None
        notification_id = int(match.group(1))
        if not hmac.compare_digest(match.group(2), self._token(notification_id)):
            return None
        return notification_id
