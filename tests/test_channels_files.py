"""The local transports (Maildir, SMS file) and the factory that picks transports from settings."""

from __future__ import annotations

import asyncio
import json
import mailbox
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.factory import build_email_transport, build_sms_transport
from gateway.delivery.channels.maildir import MaildirTransport
from gateway.delivery.channels.sms_file import SMSFileTransport
from gateway.delivery.channels.smtp import SMTPTransport
from gateway.delivery.channels.twilio import TwilioTransport
from gateway.delivery.errors import PermanentDeliveryError

SENDER = "protocolos@example.com"


def email(n: int = 1, **fields: object) -> Message:
    values: dict = {
        "notification_id": n,
        "channel": "email",
        "to": "cliente@example.com",
        "text": "Seu protocolo é 20260312000000017.",
        "subject": "Protocolo nº 20260312000000017",
        "html": "<p>Seu protocolo é <b>20260312000000017</b>.</p>",
        "message_id": f"<notification-{n}@gateway.example.com>",
        "reply_to": "sac@example.com",
    }
    values.update(fields)
    return Message(**values)


def sms(n: int = 1) -> Message:
    return Message(
        notification_id=n,
        channel="sms",
        to="+5511987654321",
        text=f"Protocolo 2026031200000001{n % 10}: recebido ✓",
        status_callback=f"http://127.0.0.1:8080/twilio/status/{n}",
    )


async def test_maildir_files_the_message(tmp_path: Path) -> None:
    folder = tmp_path / "mail"

    receipt = await MaildirTransport(folder, SENDER).send(email())

    box = mailbox.Maildir(folder, create=False)
    assert list(box.keys()) == [receipt.provider_id]
    filed = box[receipt.provider_id]
    assert filed["Message-ID"] == "<notification-1@gateway.example.com>"
    assert filed["From"] == SENDER
    assert filed["Reply-To"] == "sac@example.com"
    assert filed.get_content_type() == "multipart/alternative"
    assert (folder / "new" / receipt.provider_id).is_file()


async def test_maildir_subject_survives_encoding(tmp_path: Path) -> None:
    receipt = await MaildirTransport(tmp_path, SENDER).send(email())

    raw = (tmp_path / "new" / str(receipt.provider_id)).read_bytes()
    assert BytesParser(policy=default).parsebytes(raw)["Subject"] == "Protocolo nº 20260312000000017"


async def test_maildir_refuses_line_breaks_in_headers(tmp_path: Path) -> None:
    with pytest.raises(PermanentDeliveryError):
        await MaildirTransport(tmp_path / "mail", SENDER).send(email(subject="a\r\nBcc: victim@example.com"))

    assert not (tmp_path / "mail").exists()


async def test_sms_file_appends_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "sms.jsonl"  # missing folders are created

    receipt = await SMSFileTransport(path).send(sms(7))

    assert receipt.provider_id == "file-7"
    [line] = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record == {
        "id": 7,
        "to": "+5511987654321",
        "body": "Protocolo 20260312000000017: recebido ✓",
        "at": record["at"],
        "status_callback": "http://127.0.0.1:8080/twilio/status/7",
    }
    assert datetime.fromisoformat(record["at"]).utcoffset() == timezone.utc.utcoffset(None)


async def test_concurrent_sms_file_appends_give_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    transport = SMSFileTransport(path)

    await asyncio.gather(*(transport.send(sms(n)) for n in range(100)))

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100
    assert sorted(json.loads(line)["id"] for line in lines) == list(range(100))


async def test_factory_defaults_to_local_files_under_base_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate({"base_dir": tmp_path})
    email_transport = build_email_transport(settings)
    sms_transport = build_sms_transport(settings)

    assert isinstance(email_transport, MaildirTransport)
    assert isinstance(sms_transport, SMSFileTransport)
    await email_transport.send(email())
    await sms_transport.send(sms())
    assert len(list((tmp_path / "var" / "mail" / "new").iterdir())) == 1
    assert (tmp_path / "var" / "sms.jsonl").is_file()


def test_factory_builds_smtp_and_twilio() -> None:
    settings = Settings.model_validate(
        {
            "email": {"transport": "smtp", "from": SENDER, "smtp": {"host": "127.0.0.1", "port": 2525}},
            "sms": {"transport": "twilio", "twilio": {"account_sid": "AC1", "auth_token": "t", "from": "+15005550006"}},
        }
    )

    assert isinstance(build_email_transport(settings), SMTPTransport)
    assert isinstance(build_sms_transport(settings), TwilioTransport)
