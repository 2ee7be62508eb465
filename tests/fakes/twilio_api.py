"""A fake Twilio Messages API on loopback, for driving the real SDK in tests.

    async with FakeTwilio() as fake:
        settings = TwilioSettings(account_sid=fake.account_sid, auth_token=fake.auth_token,
                                  from_="+15005550006", api_base_url=fake.base_url)
        fake.script(status=429, code=20429, retry_after=7)   # the next POST gets a 429
        ...
        assert fake.messages[0].form["To"] == "+5511987654321"

It serves `POST /2010-04-01/Accounts/{sid}/Messages.json` (and `GET .../Accounts/{sid}.json`,
the account, which the gateway fetches to probe its credentials), checks Basic auth
(401, code 20003, otherwise), and answers 201 with Twilio's fields. Each POST takes the
next scripted `Answer` if any; otherwise numbers ending in one of `invalid_numbers`
get 400/21211 and those ending in one of `stopped_numbers` get 400/21610 (the
recipient replied STOP). Every POST is recorded in `messages`, refused ones included,
so a test can count them: one send must make exactly one POST.

WhatsApp is the same endpoint with `whatsapp:` addresses, as Twilio does it:
- `To=whatsapp:+...` needs `From=whatsapp:+...` (or a MessagingServiceSid): else 400/63007.
- `ContentSid` must name one of `content_templates` (sid -> approved body with {{1}}...): else
  400/21655; `ContentVariables` (JSON) fill it, and the answer's `body` is the filled text.
- Free text (`Body`) is accepted (201) as Twilio does, but fails later with 63016 unless the
  number is in `sessions` (it wrote within 24 hours); numbers ending in one of `not_whatsapp`
  fail later with 63003. `outcome(posted)` says what the status callbacks will report, and
  `receipt(posted, status)` builds the form of one callback (delivered, read, failed...).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import BasicAuth, web

_ERROR_TEXT = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21655: "The ContentSid is Invalid",
    63003: "Channel could not find To address",
    63007: "Twilio could not find a Channel with the specified From address",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}


@dataclass(frozen=True)
class Answer:
    """How the fake answers one POST: success (201) or a Twilio error, maybe late."""

    status: int = 201
    code: int | None = None          # Twilio's error code, for status >= 400
    retry_after: float | None = None  # sent as the Retry-After header
    delay: float = 0.0               # seconds to wait before answering (to make clients time out)
    message: str | None = None       # error text; a stock one per code otherwise


@dataclass
class Posted:
    """One POST the fake received and what it answered."""

    account_sid: str                  # from the URL
    form: dict[str, str]              # To, Body, From, MessagingServiceSid, StatusCallback...
    auth: tuple[str, str] | None      # the Basic auth (login, password) sent, if any
    answer: Answer
    sid: str | None = None            # the SM... sid returned on success


class FakeTwilio:
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "fake-auth-token") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.invalid_numbers: set[str] = set()  # suffixes answered 400/21211
        self.stopped_numbers: set[str] = set()  # suffixes answered 400/21610
        self.messages: list[Posted] = []
        self.content_templates: dict[str, str] = {}  # WhatsApp: Content SID -> approved body
        self.sessions: set[str] = set()  # WhatsApp numbers (+55...) that wrote within 24 hours
        self.not_whatsapp: set[str] = set()  # suffixes of numbers with no WhatsApp: fail later, 63003
        self.account_fetches = 0  # GET Accounts/{sid}.json: the gateway's probe, answered 401 on a bad login
        self.base_url = ""  # set on start: http://127.0.0.1:PORT
        self._scripted: deque[Answer] = deque()
        self._runner: web.AppRunner | None = None

    def script(self, **answer: Any) -> None:
        """Queue the answer for the next POST, e.g. `script(status=500, code=20500)` or `script(delay=5)`."""
        self._scripted.append(Answer(**answer))

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create_message)
        app.router.add_get("/2010-04-01/Accounts/{sid}.json", self._fetch_account)  # the gateway's probe
        # handler_cancellation: a client that gave up ends a delayed answer, so cleanup is quick.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _create_message(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        auth = _basic_auth(request)
        account_sid = request.match_info["sid"]
        if auth != (self.account_sid, self.auth_token) or account_sid != self.account_sid:
            answer = Answer(status=401, code=20003)  # checked first: a bad login consumes no script
        else:
            answer = self._answer_for(form.get("To", ""), form)
        posted = Posted(account_sid=account_sid, form=form, auth=auth, answer=answer)
        self.messages.append(posted)  # recorded on arrival: a late answer still means Twilio got it
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = {"Retry-After": f"{answer.retry_after:g}"} if answer.retry_after is not None else {}
        if answer.status >= 400:
            return web.json_response(_error_body(answer), status=answer.status, headers=headers)
        posted.sid = "SM" + secrets.token_hex(16)
        return web.json_response(self._message_body(posted), status=answer.status, headers=headers)

    async def _fetch_account(self, request: web.Request) -> web.Response:
        self.account_fetches += 1
        if _basic_auth(request) != (self.account_sid, self.auth_token) or request.match_info["sid"] != self.account_sid:
            return web.json_response(_error_body(Answer(status=401, code=20003)), status=401)
        return web.json_response({"sid": self.account_sid, "friendly_name": "fake", "status": "active",
                                  "type": "Full", "uri": f"/2010-04-01/Accounts/{self.account_sid}.json"})

    def _answer_for(self, to: str, form: dict[str, str]) -> Answer:
        if self._scripted:
            return self._scripted.popleft()
        if to.startswith("whatsapp:"):
            if not form.get("From", "").startswith("whatsapp:") and not form.get("MessagingServiceSid"):
                return Answer(status=400, code=63007)
            if "ContentSid" in form and form["ContentSid"] not in self.content_templates:
                return Answer(status=400, code=21655)
        if any(to.endswith(suffix) for suffix in self.invalid_numbers):
            return Answer(status=400, code=21211, message=f"The 'To' number {to} is not a valid phone number.")
        if any(to.endswith(suffix) for suffix in self.stopped_numbers):
            return Answer(status=400, code=21610)
        return Answer()

    def outcome(self, posted: Posted) -> tuple[str, int | None]:
        """What Twilio's status callbacks will say of an accepted message: (status, error code)."""
        to = posted.form.get("To", "")
        if not to.startswith("whatsapp:"):
            return "delivered", None
        number = to.removeprefix("whatsapp:")
        if any(number.endswith(suffix) for suffix in self.not_whatsapp):
            return "failed", 63003
        if "ContentSid" not in posted.form and number not in self.sessions:
            return "failed", 63016
        return "read", None

    def receipt(self, posted: Posted, status: str, error_code: int | None = None) -> dict[str, str]:
        """The form of one status callback for `posted`, as Twilio posts it to the StatusCallback URL."""
        form = {"MessageSid": posted.sid or "", "MessageStatus": status, "AccountSid": posted.account_sid,
                "To": posted.form.get("To", ""), "From": posted.form.get("From", "")}
        if posted.form.get("To", "").startswith("whatsapp:"):
            form["ChannelPrefix"] = "whatsapp"
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return form

    def _message_body(self, posted: Posted) -> dict[str, Any]:
        body = posted.form.get("Body", "")
        if "ContentSid" in posted.form:  # what the consumer reads: the approved body, filled
            values = json.loads(posted.form.get("ContentVariables") or "{}")
            body = re.sub(r"\{\{(\d+)\}\}", lambda m: str(values.get(m[1], m[0])),
                          self.content_templates[posted.form["ContentSid"]])
        return {
            "sid": posted.sid,
            "account_sid": posted.account_sid,
            "to": posted.form.get("To"),
            "from": posted.form.get("From"),
            "messaging_service_sid": posted.form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued",
            "num_segments": str(_segments(body)),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{posted.account_sid}/Messages/{posted.sid}.json",
        }


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    try:
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
    except ValueError:
        return None
    return auth.login, auth.password


def _error_body(answer: Answer) -> dict[str, Any]:
    code = answer.code if answer.code is not None else answer.status
    return {
        "code": code,
        "message": answer.message or _ERROR_TEXT.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": answer.status,
    }


def _segments(body: str) -> int:
    """Roughly what Twilio bills: GSM-7 when ASCII (160, then 153 per part), UCS-2 otherwise (70, then 67)."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / part)
