"""TwilioTransport: the real Twilio SDK against a fake Twilio API on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

import pytest
from aiohttp import web
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gateway.config import TwilioSettings
from gateway.delivery.channels import twilio
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.twilio import TwilioTransport
from gateway.delivery.errors import PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError
from tests.fakes.smtp_sink import free_port
from tests.fakes.twilio_api import FakeTwilio

FROM = "+15005550006"
SERVICE = "MG" + "1" * 32


def sms(n: int = 1, **fields: object) -> Message:
    values: dict = {
        "notification_id": n,
        "channel": "sms",
        "to": f"+55119876543{n:02d}",
        "text": f"Protocolo 20260312000000017: recebido ({n})",
        "status_callback": f"http://127.0.0.1:8080/twilio/status/{n}",
    }
    values.update(fields)
    return Message(**values)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def make_transport(fake: FakeTwilio) -> AsyncIterator[Callable[..., TwilioTransport]]:
    """Transports aimed at the fake, closed after the test; keyword arguments override settings."""
    made: list[TwilioTransport] = []

    def make(**overrides: object) -> TwilioTransport:
        fields: dict = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_": FROM,
            "api_base_url": fake.base_url,
            "timeout": 5,
            **overrides,
        }
        made.append(TwilioTransport(TwilioSettings(**fields)))
        return made[-1]

    yield make
    for transport in made:
        await transport.aclose()


async def test_sends_to_body_from_and_status_callback(fake: FakeTwilio, make_transport) -> None:
    receipt = await make_transport().send(sms(7))

    [posted] = fake.messages
    assert posted.form == {
        "To": "+5511987654307",
        "Body": "Protocolo 20260312000000017: recebido (7)",
        "From": FROM,
        "StatusCallback": "http://127.0.0.1:8080/twilio/status/7",
    }
    assert posted.auth == (fake.account_sid, fake.auth_token)
    assert receipt.provider_id == posted.sid and receipt.provider_id.startswith("SM")
    assert receipt.status == "sent"
    assert receipt.segments == 1


async def test_messaging_service_instead_of_from(fake: FakeTwilio, make_transport) -> None:
    await make_transport(from_=None, messaging_service_sid=SERVICE).send(sms(status_callback=None))

    assert fake.messages[0].form == {"To": "+5511987654301", "Body": sms().text, "MessagingServiceSid": SERVICE}


async def test_429_is_transient_with_retry_after(fake: FakeTwilio, make_transport) -> None:
    fake.script(status=429, code=20429, retry_after=7)

    with pytest.raises(TransientDeliveryError) as caught:
        await make_transport().send(sms())

    assert caught.value.retry_after == 7
    assert caught.value.code == "20429"


async def test_concurrent_sends_each_see_their_own_retry_after(fake: FakeTwilio, make_transport) -> None:
    # Scripts are taken in arrival order and answered after different delays, so the
    # responses come back interleaved; each error must carry its own response's header.
    for n in range(10):
        fake.script(status=429, code=20429, retry_after=n + 1, delay=(n % 4) * 0.01)
    transport = make_transport()

    results = await asyncio.gather(*(transport.send(sms(n)) for n in range(10)), return_exceptions=True)

    answered = {p.form["To"]: p.answer.retry_after for p in fake.messages}
    seen = {sms(n).to: error.retry_after for n, error in enumerate(results)}
    assert all(isinstance(error, TransientDeliveryError) for error in results)
    assert seen == answered
    assert sorted(seen.values()) == list(range(1, 11))


async def test_500_is_transient_and_posted_once(fake: FakeTwilio, make_transport) -> None:
    fake.script(status=500, code=20500)

    with pytest.raises(TransientDeliveryError) as caught:
        await make_transport().send(sms())

    assert caught.value.code == "20500"
    assert caught.value.retry_after is None
    assert len(fake.messages) == 1  # the SDK did not retry (that could send the SMS twice)


async def test_invalid_number_is_permanent(fake: FakeTwilio, make_transport) -> None:
    fake.invalid_numbers.add("01")

    with pytest.raises(PermanentDeliveryError) as caught:
        await make_transport().send(sms(1))
    await make_transport().send(sms(2))

    assert caught.value.code == "21211"
    assert len(fake.messages) == 2


async def test_scripted_400_is_permanent(fake: FakeTwilio, make_transport) -> None:
    fake.script(status=400, code=21211)

    with pytest.raises(PermanentDeliveryError) as caught:
        await make_transport().send(sms())

    assert caught.value.code == "21211"


async def test_recipient_who_replied_stop_is_permanent(fake: FakeTwilio, make_transport) -> None:
    fake.stopped_numbers.add("01")

    with pytest.raises(PermanentDeliveryError) as caught:
        await make_transport().send(sms(1))

    assert caught.value.code == "21610"


async def test_wrong_credentials_are_retried_not_failed_for_good(fake: FakeTwilio, make_transport) -> None:
    # A wrong token is the operator's to fix; the messages must still go once it is fixed.
    with pytest.raises(TransientDeliveryError) as caught:
        await make_transport(auth_token="wrong").send(sms())

    assert caught.value.code == "20003"


async def test_refused_connection_is_transient(make_transport) -> None:
    transport = make_transport(api_base_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(TransientDeliveryError):
        await transport.send(sms())


async def test_no_answer_within_the_timeout_is_an_unknown_outcome(fake: FakeTwilio, make_transport) -> None:
    fake.script(delay=5)

    # 1 s for the request to reach the fake (0.2 s was not always enough on a loaded machine: the
    # timeout came before the fake read the form, and nothing said Twilio got it), 5 s short of its answer.
    with pytest.raises(UnknownOutcomeError):
        await make_transport(timeout=1.0).send(sms())

    assert len(fake.messages) == 1  # Twilio got it: the SMS may well go out


async def test_an_answer_that_stops_halfway_is_an_unknown_outcome_within_the_timeout(make_transport) -> None:
    """The timeout is aiohttp's total on the whole request, the answer's body included: Twilio's
    headers and half its JSON, then silence, end at the timeout like no answer at all."""
    stalled = asyncio.Event()

    async def half_an_answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.content_length = 200
        await response.prepare(request)
        await response.write(b'{"sid": "SM' + b"0" * 16)
        stalled.set()
        await asyncio.sleep(30)  # the rest never comes (cancelled when the client goes)
        return response

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", half_an_answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    transport = make_transport(api_base_url=f"http://{host}:{port}", timeout=1.0)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(UnknownOutcomeError):
            await asyncio.wait_for(transport.send(sms()), timeout=10)  # the guard: never 30 s
        took = loop.time() - started
    finally:
        await transport.aclose()
        await runner.cleanup()
    assert stalled.is_set() and took < 5, took  # the timeout, not rounded up nor waiting for the body

    # Not rounded up either: aiohttp would end a total of 5 s or more at the loop's next whole second.
    exact = make_transport(timeout=15.0)
    exact._client_in_loop()
    assert exact._http is not None
    total = exact._http._total(None)
    assert (total.total, total.ceil_threshold) == (15.0, math.inf)


async def test_twilio_edge_and_region_from_the_environment_are_ignored(
    fake: FakeTwilio, make_transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    await make_transport().send(sms())

    assert len(fake.messages) == 1


def test_can_be_built_outside_a_running_loop() -> None:
    # The SDK's HTTP client needs a running loop; the transport builds it on first send.
    TwilioTransport(TwilioSettings(account_sid="AC1", auth_token="t", from_=FROM))


async def test_what_goes_on_the_wire_is_what_the_sdks_own_client_sends() -> None:
    """The transport's client sends the request itself: the same method, path, query, headers and body
    bytes as the SDK's own AsyncTwilioHttpClient. Each call is made through both and compared: an SMS in
    Portuguese (characters to escape, a repeated space), a WhatsApp template with JSON variables, the
    account probe (a GET), a form with a list (repeated keys) and a query (a page of messages)."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> None:
        kept = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        seen.append((request.method, request.path_qs, kept, await request.read()))

    async def create(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"sid": "SM" + "0" * 32, "status": "queued", "num_segments": "1"}, status=201)

    async def page(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"messages": [], "next_page_uri": None})

    async def account(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"sid": request.match_info["sid"], "status": "active"})

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", page)
    app.router.add_get("/2010-04-01/Accounts/{sid}.json", account)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    settings = TwilioSettings(account_sid="AC" + "1" * 32, auth_token="tok:en", from_=FROM, api_base_url=base)
    transport, whatsapp = TwilioTransport(settings), TwilioTransport(settings, channel="whatsapp")
    sdk_http = AsyncTwilioHttpClient()
    sdk = Client(settings.account_sid, "tok:en", http_client=sdk_http)
    sdk.edge = sdk.region = None
    sdk.api.base_url = base
    ours = transport._client_in_loop()  # the transport's own SDK client, on its HTTP client
    text = "Olá, Conceição! Protocolo nº 2026 & 100%  recebido: https://x.example/p?a=1&b=ç"
    template = {"content_sid": "HX" + "2" * 32, "variables": {"1": "Ana & Zé", "2": "nº 20260312000000017"}}
    media = ["https://x.example/a.png", "https://x.example/b ç.png?x=1&y=2"]
    try:
        await transport.send(sms(3, text=text))
        await sdk.messages.create_async(to="+5511987654303", body=text, from_=FROM,
                                        status_callback="http://127.0.0.1:8080/twilio/status/3")
        await whatsapp.send(sms(4, channel="whatsapp", window_open=False, content_sid=template["content_sid"],
                                content_variables=template["variables"]))
        await sdk.messages.create_async(to="whatsapp:+5511987654304", from_=FROM, content_sid=template["content_sid"],
                                        content_variables=json.dumps(template["variables"], ensure_ascii=False),
                                        status_callback="http://127.0.0.1:8080/twilio/status/4")
        await transport.probe()
        await sdk.api.v2010.accounts(settings.account_sid).fetch_async()
        for client in (ours, sdk):
            await client.messages.create_async(to="+5511987654305", from_=FROM, body="ç", media_url=media)
        for client in (ours, sdk):
            await client.messages.page_async(to="+55 11 98765-4305", page_size=2)
    finally:
        await transport.aclose()
        await whatsapp.aclose()
        await sdk_http.close()
        await runner.cleanup()
    assert len(seen) == 10
    pairs = [(seen[i], seen[i + 1]) for i in range(0, 10, 2)]
    for what, (by_us, by_sdk) in zip(("sms", "whatsapp", "probe", "list", "query"), pairs):
        assert by_us == by_sdk, what
    (sms_sent, _), _, (probe, _), (listed, _), (paged, _) = pairs
    assert b"Body=Ol%C3%A1%2C+Concei%C3%A7%C3%A3o" in sms_sent[3]
    assert sms_sent[2]["Content-Type"] == "application/x-www-form-urlencoded"
    login = f"{settings.account_sid}:tok:en".encode()
    assert sms_sent[2]["Authorization"] == "Basic " + base64.b64encode(login).decode()
    assert probe[0] == "GET" and probe[3] == b""
    assert listed[3].count(b"MediaUrl=") == 2
    assert "To=%2B55+11+98765-4305" in paged[1] and "PageSize=2" in paged[1]


FORMS = [
    {"To": "+5511987654321", "From": "+15005550006", "Body": "Olá, Conceição! Nº 2026 & 100%  às 14:32 ~ *"},
    {"Body": "emoji 😀, 中文, עברית, CR\r\nLF, tab\t, =?&+/ and a quote \"", "StatusCallback": "http://h/s?n=1&x=ç"},
    {"MediaUrl": ["https://x.example/a.png", "https://x.example/b ç.png?x=1&y=2"], "Body": ""},
    {"MediaUrl": ("a b", "ç"), "To": "whatsapp:+5511987654321"},
    {"ValidityPeriod": 600, "Body": "a number goes through urlencode itself"},
    {"Flag": True, "Bytes": b"ol\xc3\xa1 +"},
    {},
]


@pytest.mark.parametrize("form", FORMS, ids=range(len(FORMS)))
def test_the_form_is_urlencodes_text(form: dict[str, object]) -> None:
    """The transport's client escapes a form by table (twilio._form): byte for byte what
    `urlencode(doseq=True)` writes, the SDK's and aiohttp's way, including what it falls back to."""
    assert twilio._form(form) == urlencode(form, doseq=True).encode()


def test_a_lone_surrogate_is_refused_as_urlencode_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        urlencode({"Body": "a \ud800 b"})
    with pytest.raises(UnicodeEncodeError):
        twilio._form({"Body": "a \ud800 b"})


def test_the_escape_table_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    table = twilio._Escapes()
    monkeypatch.setattr(twilio, "_ESCAPES", table)
    text = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 5000))  # 5,000 characters never seen
    assert twilio._form({"Body": text}) == urlencode({"Body": text}).encode()
    assert len(table) == 4096  # full: the characters past it are escaped each time, and still right
    assert twilio._form({"Body": text}) == urlencode({"Body": text}).encode()
