"""SMS and WhatsApp through Twilio's REST API with the official SDK's async client.

WhatsApp is the same Messages endpoint with `whatsapp:` addresses; outside the 24 hours after
the consumer's last message it takes an approved template (`content_sid`, `content_variables`),
and free text there is refused (error 63016): such a message is failed here, before the call,
so that its fallback chain moves on at once.

Three traps shape this file (see LIBRARY-NOTES): the SDK's HTTP client must be built
inside the running loop, its own timeout is ignored, and its retries re-POST after a
500 and can send one SMS several times. So: a lazy client, a timeout of our own, no
`max_retries`; retries belong to the outbox. The timeout is aiohttp's `total` on each request
our HTTP client sends (below), not an `asyncio.timeout` around the SDK's call: aiohttp times
every request anyway, and a second timer cost ~4 µs a send (bench/README.md, "Fourteenth round").
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote_plus, urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from gateway.config import TwilioSettings
from gateway.delivery.channels.base import Message, Receipt
from gateway.delivery.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError

# The headers of the last Twilio response seen by the current task. Concurrent sends run
# in different tasks, so each reads its own response and never a neighbour's.
_response_headers: ContextVar[Mapping[str, str] | None] = ContextVar("twilio_response_headers", default=None)


class _HeaderKeepingHttpClient(AsyncTwilioHttpClient):
    """The SDK's aiohttp client, sending the request itself: keeps each response's headers
    (`TwilioRestException` drops them, and a 429's Retry-After is there) and encodes the form once.

    The ContextVar is set inside this coroutine; `send` awaits the SDK, which awaits this
    directly (no new task), so the value lands in the sending task's own context.

    What goes on the wire is what the SDK's own `request` sends for a form of strings and lists
    (all the SDK builds; bytes or files would go as multipart there): the same method, URL, query,
    headers and form. Two costs of its path are left out. The form is encoded here with
    `urlencode(..., doseq=True)`, as aiohttp's FormData does, but sent as bytes: given a dict,
    aiohttp first fails a payload lookup, then builds a FormData and a MultipartWriter (~30 µs a
    form against ~17). And the SDK's request and response logging formats eight strings a send at
    INFO even when nothing logs them. Together ~45 µs an SMS (bench/README.md, "Tenth round").
    The form's text is `urlencode`'s, each character's escape looked up rather than worked out
    (`_form`): ~11 µs an SMS against ~22.
    """

    _authorization: tuple[tuple[str, str], str] | None = None
    _timeouts: tuple[float | None, aiohttp.ClientTimeout] | None = None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        headers = dict(headers or {})
        if auth is not None:
            # As a header: aiohttp deprecates (and 4.0 removes) the `auth=` the SDK would pass.
            headers["Authorization"] = self._basic(auth)
        body = None
        if data is not None:  # as aiohttp's FormData would: form-encoded, whatever the method
            body = _form(data)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        assert self.session is not None  # built with pool_connections (the default): one session, kept
        async with self.session.request(method.upper(), url, params=params, data=body, headers=headers,
                                        timeout=self._total(timeout), allow_redirects=allow_redirects) as response:
            text = await response.text()
        _response_headers.set(response.headers)
        return Response(response.status, text, response.headers)

    def _total(self, timeout: float | None) -> aiohttp.ClientTimeout:
        """The whole request (connecting, sending, reading the answer) within `timeout` seconds, else
        this client's own (the SDK passes None unless a caller gives one); kept for the last value.
        On expiry aiohttp raises TimeoutError: the message may have left."""
        seconds = timeout if timeout is not None else self.timeout
        kept = self._timeouts
        if kept is None or kept[0] != seconds:
            # ceil_threshold: aiohttp would round a total of 5 s or more up to the loop's next whole
            # second, and the 15 s default could run to 16.
            kept = self._timeouts = (seconds, aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf))
        return kept[1]

    def _basic(self, auth: tuple[str, str]) -> str:
        """`Basic base64(login:password)`, kept for the credentials last used: the same every send."""
        kept = self._authorization
        if kept is None or kept[0] != auth:
            login, password = auth
            basic = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
            kept = self._authorization = (auth, f"Basic {basic}")
        return kept[1]


class _Escapes(dict[int, str]):
    """A `str.translate` table: each character's form escape (`quote_plus`'s: `+` for a space, UTF-8
    `%XX` otherwise, safe characters as they are), worked out the first time it is seen. Kept for
    the first 4,096 characters met: a few hundred in any language's messages, never without bound."""

    def __missing__(self, code: int) -> str:
        escaped = quote_plus(chr(code))  # a lone surrogate raises UnicodeEncodeError, as urlencode does
        if len(self) < 4096:
            self[code] = escaped
        return escaped


_ESCAPES = _Escapes()


def _form(data: Mapping[str, object]) -> bytes:
    """`urlencode(data, doseq=True)` as bytes, the same text: the SDK's forms are strings and lists of
    strings, each escaped by one `str.translate` instead of urllib's character loop in Python.
    Anything else (a number, bytes) goes to `urlencode` itself."""
    parts: list[str] = []
    for key, value in data.items():
        if type(key) is not str:
            return urlencode(data, doseq=True).encode()
        name = key.translate(_ESCAPES)
        if type(value) is str:
            parts.append(f"{name}={value.translate(_ESCAPES)}")
        elif type(value) in (list, tuple) and all(type(v) is str for v in value):  # type: ignore[arg-type]
            parts.extend(f"{name}={v.translate(_ESCAPES)}" for v in value)  # type: ignore[attr-defined]
        else:
            return urlencode(data, doseq=True).encode()
    return "&".join(parts).encode("ascii")


class TwilioTransport:
    sends_receipts = True  # status callbacks

    def __init__(self, settings: TwilioSettings, channel: str = "sms") -> None:
        self._settings = settings
        self._channel = channel
        self._http: _HeaderKeepingHttpClient | None = None
        self._client: Client | None = None

    def _client_in_loop(self) -> Client:
        """Built on first send: the SDK's HTTP client opens an aiohttp session, which needs the running loop."""
        if self._client is None:
            s = self._settings
            # No max_retries: it would re-POST and duplicate SMS.
            self._http = _HeaderKeepingHttpClient(timeout=s.timeout)
            token = s.auth_token.get_secret_value() if s.auth_token else None
            client = Client(s.account_sid, token, http_client=self._http)
            client.edge = client.region = None  # TWILIO_EDGE / TWILIO_REGION would rewrite the API host
            client.api.base_url = s.api_base_url.rstrip("/")
            self._client = client
        return self._client

    async def send(self, message: Message) -> Receipt:
        if message.channel == "whatsapp" and not message.window_open and not message.content_sid:
            raise PermanentDeliveryError(
                "WhatsApp: the consumer has not written in the last 24 hours and this message has no approved "
                "template to go as (a content_sid for its locale in template.toml, and a value for every "
                "variable): WhatsApp would refuse free text (63016)",
                code="no_template")
        client = self._client_in_loop()
        _response_headers.set(None)
        try:  # within `timeout`: our HTTP client's, on each request
            sent = await client.messages.create_async(**self._params(message))
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _refusal(exc, _response_headers.get(), self._channel) from exc
        except aiohttp.ClientConnectorError as exc:  # no connection, so no request
            raise TransientDeliveryError(f"cannot reach Twilio: {exc}") from exc
        except TimeoutError as exc:
            raise UnknownOutcomeError(f"Twilio did not answer within {self._settings.timeout}s") from exc
        except (aiohttp.ClientError, json.JSONDecodeError) as exc:  # the POST may have arrived
            raise UnknownOutcomeError(f"Twilio call failed after the request may have been sent: {exc!r}") from exc
        return Receipt(provider_id=sent.sid, status="sent", segments=_segments(sent.num_segments))

    async def probe(self) -> None:
        """The account answers with our credentials at `api_base_url` (GET Accounts/{sid}); nothing is sent."""
        client = self._client_in_loop()
        try:
            async with asyncio.timeout(self._settings.timeout):
                await client.api.v2010.accounts(self._settings.account_sid).fetch_async()
        except (TwilioRestException, TwilioServiceException) as exc:
            what = "refused our credentials" if exc.status in (401, 403) else "answered"
            raise TransientDeliveryError(
                f"Twilio at {self._settings.api_base_url} {what}: HTTP {exc.status}, error {exc.code} "
                f"(check {self._channel}.twilio.account_sid and .auth_token)", code=str(exc.code) if exc.code else None) from exc
        except TimeoutError as exc:
            raise TransientDeliveryError(f"Twilio at {self._settings.api_base_url} did not answer within "
                                         f"{self._settings.timeout:g}s") from exc
        except (aiohttp.ClientError, json.JSONDecodeError) as exc:
            raise TransientDeliveryError(f"cannot reach Twilio at {self._settings.api_base_url}: {exc}") from exc

    def _params(self, message: Message) -> dict[str, str]:
        s = self._settings
        if message.channel == "whatsapp":
            params = {"to": f"whatsapp:{message.to}"}
            if message.window_open:  # free text, as the consumer wrote to us within 24 hours
                params["body"] = message.text
            else:
                assert message.content_sid is not None
                params["content_sid"] = message.content_sid
                params["content_variables"] = json.dumps(message.content_variables or {}, ensure_ascii=False)
        else:
            params = {"to": message.to, "body": message.text}
        if s.from_:
            params["from_"] = s.from_
        if s.messaging_service_sid:
            params["messaging_service_sid"] = s.messaging_service_sid
        if message.status_callback:
            params["status_callback"] = message.status_callback
        return params

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None


def _refusal(exc: TwilioRestException | TwilioServiceException, headers: Mapping[str, str] | None,
             channel: str = "sms") -> DeliveryError:
    code = str(exc.code) if exc.code is not None else None
    what = "WhatsApp message" if channel == "whatsapp" else "SMS"
    text = f"Twilio refused the {what}: HTTP {exc.status}, error {code}"
    if exc.status == 429 or exc.status >= 500:
        return TransientDeliveryError(text, code=code, retry_after=_retry_after(headers))
    if exc.status in (401, 403):
        # Our credentials, not this message: once an operator fixes them the SMS can go,
        # so retry until give_up_after instead of failing every message for good.
        return TransientDeliveryError(text, code=code)
    # 21211 invalid number, 21610 recipient replied STOP, 63003/63024 not a WhatsApp number,
    # 63016 free text outside WhatsApp's 24 hours (which the check above should make impossible)...
    if 400 <= exc.status < 500:
        return PermanentDeliveryError(text, code=code)
    return TransientDeliveryError(text, code=code)  # a 3xx: a wrong api_base_url, nothing was sent


def _segments(value: str | None) -> int | None:
    # Read after Twilio accepted the SMS: an odd value must not turn a sent SMS into an error.
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds, given either as seconds or as an HTTP date."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC without saying so
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
