"""List-Unsubscribe for the emails a consumer did not ask for (RFC 2369, one-click RFC 8058).

Only templates that sweeps send to consumers on their own (deadline reminders) carry the
headers: the legally required confirmation, and whatever the consumer asked for, never do.
The link is `{http.public_url}/u/{id}.{token}`: the notification's id and an HMAC of it, no
address or phone in it; the address that unsubscribes is the one that notification went to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.delivery.signed_ids import TOKEN_CHARS, SignedIds

PATH = "/u/"
_TOKEN = re.compile(rf"^(\d{{1,18}})\.([a-z2-7]{{{TOKEN_CHARS}}})$")


class UnsubscribeLinks:
    def __init__(self, public_url: str, secret: str, proactive_templates: Iterable[str]) -> None:
        self.public_url = public_url.rstrip("/")
        self.proactive = frozenset(proactive_templates)
        self._ids = SignedIds(secret, "unsubscribe")

    def url(self, notification_id: int) -> str:
        return f"{self.public_url}{PATH}{notification_id}.{self._ids.token(notification_id)}"

    def headers(self, notification_id: int, template: str) -> dict[str, str]:
        if template not in self.proactive:
            return {}
        return {"List-Unsubscribe": f"<{self.url(notification_id)}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def notification_of(self, token: str) -> int | None:
        match = _TOKEN.fullmatch(token.strip().lower())
        if match is None:
            return None
        notification_id = int(match.group(1))
        return notification_id if self._ids.verify(notification_id, match.group(2)) else None
