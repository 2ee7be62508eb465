"""The daemon, run as a user runs it, never writes a consumer's email address or phone number
in its logs unmasked: not on success, not when providers refuse and echo the address back."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from gateway.observability import mask, scrub
from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import free_port, opened_event
from tests.test_e2e import start_daemon, write_daemon_settings

CONSUMERS = [  # (email, phone): what happens to each
    ("ana.souza@consumer.example", "+5511912340001"),       # both go through
    ("bruno.lima@consumer.example", "+5511912340002"),      # 550 echoing the address; Twilio 21211 echoing the number
    ("carla.dias@consumer.example", "+5521998760003"),      # 451, retried later; Twilio 21610 (STOP)
]
RESEND_TO = "daniel.rocha@consumer.example"


def forms(value: str) -> set[str]:
    """The ways a contact may be written: as given, digits only, national."""
    if "@" in value:
        return {value, value.split("@")[0]}
    digits = value.lstrip("+")
    return {value, digits, digits[2:]}


async def test_no_unmasked_contact_in_the_daemons_logs(tmp_path: Path, sink: SMTPSink, twilio: FakeTwilio,
                                                       sqlite_url: str) -> None:
    def refuse(rcpt: str) -> str | None:
        if rcpt.startswith("bruno"):
            return f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        if rcpt.startswith("carla"):
            return f"451 4.3.0 <{rcpt}>: temporarily deferred"
        return None

    sink.refuse(refuse)
    twilio.invalid_numbers.add("0002")
    twilio.stopped_numbers.add("0003")
    port = free_port()
    write_daemon_settings(tmp_path, db_url=sqlite_url, port=port, sink=sink, twilio=twilio,
                          key_file="admin.key", poll_interval="100ms")
    daemon = await start_daemon(tmp_path, port, "--config", "settings.toml",
                                env={"GATEWAY_SMS__TWILIO__AUTH_TOKEN": twilio.auth_token})
    try:
        key = (tmp_path / "admin.key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
        numbers = []
        async with aiohttp.ClientSession() as http:
            for i, (email, phone) in enumerate(CONSUMERS):
                event = opened_event(f"logs-{i}", consumer={"name": "Consumidora", "email": email, "phone": phone})
                async with http.post(f"{daemon.url}/v1/events", data=json.dumps(event), headers=headers) as r:
                    assert r.status == 202, await r.text()
                    numbers.append((await r.json())["protocol"]["number"])
            bad = opened_event("logs-bad", consumer={"email": "not-an-address", "phone": "+55119"})
            async with http.post(f"{daemon.url}/v1/events", data=json.dumps(bad), headers=headers) as r:
                assert r.status == 422
            async with http.post(f"{daemon.url}/v1/protocols/{numbers[0]}/resend", data=json.dumps(
                    {"channel": "email", "to": RESEND_TO}), headers={**headers, "Content-Type": "application/json"}) as r:
                assert r.status == 202, await r.text()

            async def settled() -> bool:
                for number in numbers:
                    async with http.get(f"{daemon.url}/v1/protocols/{number}", headers=headers) as r:
                        document = await r.json()
                    if any(n["attempts"] == 0 or n["status"] == "sending" for n in document["notifications"]):
                        return False
                return True

            done = {"settled": False}

            async def poll() -> None:
                done["settled"] = await settled()

            await wait_for_async(poll, lambda: done["settled"])
    finally:
        assert await daemon.stop() == 0
    text = daemon.stderr_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    actions = {line.get("action") for line in lines}
    assert {"outbox_sent", "outbox_failed", "outbox_retry"} <= actions, actions  # the failures were logged
    contacts = [c for pair in CONSUMERS for c in pair] + [RESEND_TO]
    for contact in contacts:
        for form in forms(contact):
            assert form not in text, f"{form!r} appears unmasked in the daemon's log"
    # Whatever the code path, every consumer address that shows is masked.
    for local in re.findall(r"([\w.+-]+)@consumer\.example", text):
        assert re.fullmatch(r"\w\*\*\*", local), local
    assert any(re.search(r"\w\*\*\*@consumer\.example", json.dumps(line)) for line in lines)


async def wait_for_async(step, done, timeout: float = 20.0) -> None:
    """Run `step` until `done()`; the daemon runs in another process on its own clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await step()
        if done():
            return
        assert loop.time() < deadline, "the daemon did not settle in time"
        await asyncio.sleep(0.1)



@pytest.mark.parametrize(("raw", "masked"), [("+5511987654321", "+55119****4321"), ("5511987654321", "55119****4321"),
                                            ("11987654321", "119****4321"), ("987654321", "9****4321")])
def test_a_masked_phone_hides_at_least_four_digits(raw: str, masked: str) -> None:
    assert mask(raw) == masked
    shown = re.sub(r"\D", "", masked)
    assert len(re.sub(r"\D", "", raw)) - len(shown) >= 4


def test_scrub_masks_what_providers_echo_but_leaves_times_alone() -> None:
    assert scrub("550 5.1.1 <bruno.lima@consumer.example>: Recipient address rejected") == \
        "550 5.1.1 <b***@consumer.example>: Recipient address rejected"
    assert scrub("The 'To' number +5511912340002 is not a valid phone number.") == \
        "The 'To' number +55119****0002 is not a valid phone number."
    assert scrub("retry at 2026-11-22T15:22:08.294123+00:00") == "retry at 2026-11-22T15:22:08.294123+00:00"
    assert scrub("tel:+5511987654321, or 11 98765-4321") == "tel:+55119****4321, or 119****4321"
