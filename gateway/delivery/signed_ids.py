"""Short, unforgeable tokens that name one notification: an HMAC of its id for one purpose.

Return paths (`bounces+n123.<token>@...`) and unsubscribe links (`/u/123.<token>`) carry
them; the id is no personal datum and the token proves the gateway made it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_CHARS = 16  # base32, lower case: 80 bits of the HMAC


class SignedIds:
    def __init__(self, secret: str, purpose: str) -> None:
        self._key = secret.encode()
        self._purpose = purpose

    def token(self, notification_id: int) -> str:
        digest = hmac.new(self._key, f"{self._purpose}:{notification_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:TOKEN_CHARS]

    def verify(self, notification_id: int, token: str) -> bool:
        return hmac.compare_digest(token.lower().encode(), self.token(notification_id).encode())
