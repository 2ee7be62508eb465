"""Twilio's webhooks: inbound SMS and delivery receipts, each checked with Twilio's signature.

The signature covers the URL Twilio called, so it is checked against `http.public_url`
(behind a proxy, the URL aiohttp sees is not the one Twilio signed). A missing or bad
signature is 403 and nothing happens.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from gateway.api.problems import Problem
from gateway.api.runtime_keys import CLOCK, DB, INBOUND, SETTINGS, STATUS_HOOKS
from gateway.delivery.receipts import apply_twilio_receipt

log = logging.getLogger("gateway.webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def verified_form(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    token = settings.sms.twilio.auth_token
    if token is None:
        raise Problem(403, "Twilio webhooks need sms.twilio.auth_token to check their signature")
    form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    url = settings.http.public_url + request.path_qs
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(token.get_secret_value()).validate(url, params, signature):
        log.warning("bad webhook signature", extra={"action": "webhook_signature_refused", "path": request.path})
        raise Problem(403, "the X-Twilio-Signature header is missing or does not match")
    return params


async def inbound(request: web.Request) -> web.Response:
    form = await verified_form(request)
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid or not form.get("From"):
        raise Problem(400, "an inbound SMS needs MessageSid and From")
    await request.app[INBOUND].receive(sid=sid, from_raw=form["From"], to=form.get("To"), body=form.get("Body", ""),
                                       now=request.app[CLOCK]())
    # The reply goes through the outbox (it survives a crash), not in this response.
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def status(request: web.Request) -> web.Response:
    form = await verified_form(request)
    raw_id = request.query.get("notification")
    # ASCII digits that fit a BIGINT: anything else names no notification (and would overflow the driver).
    notification_id = int(raw_id) if raw_id and raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19 else None
    now = request.app[CLOCK]()
    async with request.app[DB].write() as session:
        _, queued = await apply_twilio_receipt(session, request.app[STATUS_HOOKS], notification_id=notification_id,
                                               form=form, now=now)
    if queued:
        request.app[INBOUND].wake()
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/webhooks/twilio/inbound", inbound)
    router.add_post("/v1/webhooks/twilio/status", status)
