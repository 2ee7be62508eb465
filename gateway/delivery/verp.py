"""Return paths unique to each email (VERP), that nobody can forge for another notification.

`bounces+n123.k3xq...@bounce.example.com`: the notification's id and an HMAC of it under a
key only the gateway knows. A bounce reaches the listener addressed to this path; a path
whose token does not match (a guess, or another notification's id with a copied token) is
refused at RCPT, so a stranger cannot mark someone's notification undelivered.
"""

from __future__ import annotations

import re

from gateway.delivery.signed_ids import TOKEN_CHARS, SignedIds


class ReturnPaths:
    def __init__(self, domain: str, secret: str, local_part: str = "bounces") -> None:
        self.domain = domain.lower()
        self.local_part = local_part
        self._ids = SignedIds(secret, "notification")
        self._pattern = re.compile(
            rf"^{re.escape(local_part)}\+n(\d{{1,18}})\.([a-z2-7]{{{TOKEN_CHARS}}})@{re.escape(self.domain)}$")

    def for_notification(self, notification_id: int) -> str:
        return f"{self.local_part}+n{notification_id}.{self._ids.token(notification_id)}@{self.domain}"

    def notification_of(self, address: str) -> int | None:
        """The notification a return path names, or None when it is not one of ours or is forged."""
        match = self._pattern.fullmatch(address.strip().strip("<>").lower())
        if match is None:
            return None
        notification_id = int(match.group(1))
        return notification_id if self._ids.verify(notification_id, match.group(2)) else None
