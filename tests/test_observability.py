"""Logs are JSON lines with an action, and personal data is masked."""

from __future__ import annotations

import json
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import observability
from gateway.observability import JSONFormatter, mask, scrub


def test_mask_examples():
    assert mask("+5511987654321") == "+55119****4321"
    assert mask("maria@example.com") == "m***@example.com"


def test_scrub_masks_contacts_in_free_text_but_not_numbers_or_dates():
    text = scrub("to maria.silva@example.com / +55 11 98765-4321 on 2026-11-22 14:51, protocol 20261122000000011")
    assert "maria.silva" not in text and "98765" not in text
    assert "2026-11-22 14:51" in text and "20261122000000011" in text


def test_formatter_masks_extra_fields_and_keeps_the_action():
    record = logging.makeLogRecord({"msg": "sent to %s", "args": ("joao@example.com",), "levelno": 20,
                                    "levelname": "INFO", "name": "t"})
    record.action = "outbox_sent"
    record.to = "+5511912345678"
    record.protocol = "20261122000000011"
    line = json.loads(JSONFormatter().format(record))
    assert line["action"] == "outbox_sent" and line["protocol"] == "20261122000000011"
    assert "joao@" not in line["message"] and "12345678" not in line["to"]


def test_internationalised_email_addresses_are_masked_too():
    """RFC 6531 addresses (a letter outside ASCII in the mailbox or the domain) used to pass in clear."""
    line = scrub("550 <jösé@example.com> unknown; 550 <maria@müller.example> unknown; ok <ação@domínio.com.br>")
    assert line == "550 <j***@example.com> unknown; 550 <m***@müller.example> unknown; ok <a***@domínio.com.br>"
    record = logging.makeLogRecord({"msg": "bounce from %s", "args": ("jösé@example.com",), "levelno": 30,
                                    "levelname": "WARNING", "name": "t"})
    assert "jösé" not in JSONFormatter().format(record)


def _scrub_by_the_patterns(text: str) -> str:
    return observability._PHONE.sub(observability._mask_phone_match,
                                    observability._EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text))


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from("0123456789 +-().:@abcz*\u0661\u0662\uff11é.\n"), max_size=40)
       | st.from_regex(r"[a-z ]{0,6}\+?\d{2}[ -]?\d{2}[ -]?\d{4,5}-?\d{4}[a-z ]{0,6}", fullmatch=True)
       | st.from_regex(r"[a-z :]{0,5}\+?[0-9]{6,9}[a-z ]{0,5}", fullmatch=True))  # around the 8 digits
def test_scrub_skips_only_what_its_patterns_would_leave_as_it_is(text: str) -> None:
    """scrub's shortcut (no "@" and fewer than 8 digits, in ASCII) leaves exactly the texts the two
    patterns would have left unchanged: whatever the text, the same result as the patterns alone."""
    assert scrub(text) == _scrub_by_the_patterns(text)
