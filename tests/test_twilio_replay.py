"""A captured Twilio signature cannot be replayed under new MessageSids (issue 14, item 5).

Twilio signs the URL and every parameter's name and value run together, so a signed request
can be re-split into another that carries the same signature. The gateway accepts only what
Twilio really sends: message SIDs of `SM`/`MM` and 32 hex digits, our AccountSid, and for an
inbound message one of our numbers as `To`. The real Twilio SDK computes and checks every
signature here.
"""

from __future__ import annotations

from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway.store.models import InboundMessage, ProviderCallback
from tests.helpers import message_sid
from tests.test_consumer_asks import PUBLIC, gw  # noqa: F401  (the fixture: a gateway wired to the fake Twilio)

INBOUND = "/v1/webhooks/twilio/inbound"
OUR_NUMBER = "+15005550006"


async def stored(gw, model) -> int:  # noqa: F811
    async with gw.runtime.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def signature(gw, path: str, form: dict[str, str]) -> str:  # noqa: F811
    return RequestValidator(gw.twilio.auth_token).compute_signature(PUBLIC + path, form)


async def test_a_signed_inbound_sms_re_split_under_a_new_message_sid_is_refused(gw):  # noqa: F811
    number = await gw.open()
    captured = {"AccountSid": gw.twilio.account_sid, "Body": f"HISTORICO {number}", "From": "+5511987654321",
                "MessageSid": message_sid("captured"), "To": OUR_NUMBER}
    signed = signature(gw, INBOUND, captured)
    assert (await gw.twilio_post(INBOUND, captured, signature=signed)).status == 200
    assert await stored(gw, InboundMessage) == 1

    sid = captured["MessageSid"]
    replays = [
        {**{k: v for k, v in captured.items() if k != "To"}, "MessageSid": sid + "To" + OUR_NUMBER},
        {**{k: v for k, v in captured.items() if k != "To"}, "MessageSid": sid + "T", "o": OUR_NUMBER},
    ]
    for replay in replays:
        # The attack is real: Twilio's own validator accepts the re-split form with the captured signature.
        assert RequestValidator(gw.twilio.auth_token).validate(PUBLIC + INBOUND, replay, signed)
        r = await gw.twilio_post(INBOUND, replay, signature=signed)
        assert r.status == 403 and r.content_type == "application/problem+json", await r.text()
    assert await stored(gw, InboundMessage) == 1  # nothing new was received or answered


async def test_another_account_or_a_number_not_ours_is_refused(gw):  # noqa: F811
    await gw.open()
    base = {"Body": "PROTOCOLO", "From": "+5511987654321", "MessageSid": message_sid("x"), "To": OUR_NUMBER}
    other_account = {**base, "AccountSid": "AC" + "f" * 32}
    r = await gw.twilio_post(INBOUND, other_account, signature=signature(gw, INBOUND, other_account))
    assert r.status == 403 and "AccountSid" in (await r.json())["detail"]
    other_number = {**base, "AccountSid": gw.twilio.account_sid, "To": "+15005550009"}
    r = await gw.twilio_post(INBOUND, other_number, signature=signature(gw, INBOUND, other_number))
    assert r.status == 403 and "To" in (await r.json())["detail"]
    assert await stored(gw, InboundMessage) == 0


async def test_a_receipt_with_a_re_split_message_sid_is_refused(gw):  # noqa: F811
    await gw.open(notify=["sms"])
    await gw.deliver()
    path = "/v1/webhooks/twilio/status?notification=1"
    captured = {"AccountSid": gw.twilio.account_sid, "MessageSid": message_sid("sent"), "MessageStatus": "sent"}
    signed = signature(gw, path, captured)
    assert (await gw.twilio_post(path, captured, signature=signed)).status == 204
    replay = {"AccountSid": gw.twilio.account_sid, "MessageSid": captured["MessageSid"] + "MessageStatussent"}
    assert RequestValidator(gw.twilio.auth_token).validate(PUBLIC + path, replay, signed)
    assert (await gw.twilio_post(path, replay, signature=signed)).status == 403
    assert await stored(gw, ProviderCallback) == 1
