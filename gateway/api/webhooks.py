"""Twilio's webhooks: inbound SMS and WhatsApp messages and delivery receipts, each checked with
Twilio's signature. WhatsApp comes to the same two URLs, its addresses prefixed `whatsapp:`.

The signature covers the URL Twilio called, so it is checked against `http.public_url`
(behind a proxy, the URL aiohttp sees is not the one Twilio signed). A missing or bad
signature is 403 and nothing happens.

Twilio signs the URL followed by every parameter's name and value run together, so the
boundaries between parameters are not signed: a captured request can be re-split into
others with the same signature (`MessageSid=SM…` + `To=+1…` becomes `MessageSid=SM…To+1…`, a
"new" message). So a signed request is also held to what Twilio really sends: message SIDs
of exactly `SM` or `MM` and 32 hex digits, our `AccountSid`, and, for an inbound message,
one of our numbers as `To` (each checked where the settings name it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from gateway.api.problems import Problem
from gateway.api.runtime_keys import CLOCK, DB, INBOUND, SETTINGS, STATUS_HOOKS
from gateway.config import Settings, TwilioSettings
from gateway.delivery.receipts import apply_twilio_receipt

log = logging.getLogger("gateway.webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")


def _refuse(request: web.Request, why: str) -> Problem:
    log.warning("webhook refused", extra={"action": "webhook_refused", "path": request.path, "reason": why})
    return Problem(403, f"this request is not one Twilio sends for our account: {why}")


def message_sid(request: web.Request, form: dict[str, Any]) -> str:
    """The MessageSid, as Twilio issues them: anything else is a re-split replay or a forgery."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise Problem(400, "a Twilio webhook needs MessageSid")
    if not MESSAGE_SID.fullmatch(sid):
        raise _refuse(request, "MessageSid is not SM or MM followed by 32 hex digits")
    return sid


def _accounts(settings: Settings) -> list[TwilioSettings]:
    """Every Twilio account that may call us: SMS's, and WhatsApp's when it goes through Twilio."""
    whatsapp = settings.whatsapp_accounts if settings.whatsapp.transport == "twilio" else []
    return [*settings.sms.accounts, *whatsapp]


def check_account(request: web.Request, form: dict[str, Any]) -> None:
    ours = [a.account_sid for a in _accounts(request.app[SETTINGS]) if a.account_sid]
    if ours and form.get("AccountSid") not in ours:
        raise _refuse(request, "AccountSid is not one of sms.twilio's (or whatsapp.twilio's) account_sid")


def check_our_number(request: web.Request, form: dict[str, Any]) -> None:
    """An inbound message is addressed to us: `To` is one of our sending numbers of its channel,
    when they are set (SMS to `sms.twilio.from`, WhatsApp to `whatsapp.twilio.from`)."""
    settings = request.app[SETTINGS]
    to = form.get("To") or ""
    if to.startswith("whatsapp:"):
        ours = [a.from_ for a in settings.whatsapp_accounts if a.from_]
        key = "whatsapp.twilio.from"
    else:
        ours = [a.from_ for a in settings.sms.accounts if a.from_]
        key = "sms.twilio.from"
    if ours and to not in ours:
        raise _refuse(request, f"To is not our number ({key})")


def _account_for(settings: Settings, form: Mapping[str, Any]) -> TwilioSettings:
    """The account whose token signs this request: Twilio signs with the token of the AccountSid it names."""
    accounts = _accounts(settings)
    return next((a for a in accounts if a.account_sid and a.account_sid == form.get("AccountSid")), accounts[0])


async def verified_form(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
    token = _account_for(settings, form).auth_token
    if token is None:
        raise Problem(403, "Twilio webhooks need sms.twilio.auth_token to check their signature")
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    url = settings.http.public_url + request.path_qs
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(token.get_secret_value()).validate(url, params, signature):
        log.warning("bad webhook signature", extra={"action": "webhook_signature_refused", "path": request.path})
        raise Problem(403, "the X-Twilio-Signature header is missing or does not match")
    return params


async def inbound(request: web.Request) -> web.Response:
    form = await verified_form(request)
    sid = message_sid(request, form)
    check_account(request, form)
    check_our_number(request, form)
    if not form.get("From"):
        raise Problem(400, "an inbound message needs MessageSid and From")
    channel = "whatsapp" if form["From"].startswith("whatsapp:") else "sms"
    await request.app[INBOUND].receive(sid=sid, from_raw=form["From"].removeprefix("whatsapp:"),
                                       to=(form.get("To") or "").removeprefix("whatsapp:") or None,
                                       body=form.get("Body", ""), now=request.app[CLOCK](), channel=channel)
    # The reply goes through the outbox (it survives a crash), not in this response.
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def status(request: web.Request) -> web.Response:
    form = await verified_form(request)
    message_sid(request, form)
    check_account(request, form)
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
