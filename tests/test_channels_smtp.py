"""SMTPTransport against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import email.utils as email_utils
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import SMTPSettings
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.smtp import _BARE, SMTPTransport, mailbox
from gateway.delivery.errors import PermanentDeliveryError, TransientDeliveryError, UnknownOutcomeError
from tests.fakes.smtp_sink import SMTPSink, free_port
from tests.tls_helpers import make_certificate

SENDER = "Atendimento São Paulo <protocolos@example.com>"


def email(n: int = 1, **fields: object) -> Message:
    values: dict = {
        "notification_id": n,
        "channel": "email",
        "to": f"cliente{n}@example.com",
        "text": "Seu protocolo é 20260312000000017.",
        "subject": "Protocolo nº 20260312000000017",
        "message_id": f"<notification-{n}@gateway.example.com>",
    }
    values.update(fields)
    return Message(**values)


def smtp_settings(port: int, **overrides: object) -> SMTPSettings:
    return SMTPSettings(**{"host": "127.0.0.1", "port": port, "starttls": False, "timeout": 5, **overrides})


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    with SMTPSink() as sink:
        yield sink


@pytest.fixture
async def transport(sink: SMTPSink) -> AsyncIterator[SMTPTransport]:
    transport = SMTPTransport(smtp_settings(sink.port), SENDER)
    yield transport
    await transport.aclose()


async def test_message_arrives_with_its_headers_and_both_parts(sink: SMTPSink, transport: SMTPTransport) -> None:
    message = email(
        html="<p>Seu protocolo é <b>20260312000000017</b>.</p>",
        reply_to="sac@example.com",
        headers={"Auto-Submitted": "auto-generated"},
    )

    receipt = await transport.send(message)

    assert receipt.provider_id == "<notification-1@gateway.example.com>"
    assert receipt.status == "sent"
    [received] = sink.received
    assert received.rcpt_tos == ["cliente1@example.com"]
    assert received.mail_from == "protocolos@example.com"
    mail = received.message
    assert mail["Subject"] == "Protocolo nº 20260312000000017"
    assert mail["From"] == SENDER
    assert mail["To"] == "cliente1@example.com"
    assert mail["Reply-To"] == "sac@example.com"
    assert mail["Message-ID"] == "<notification-1@gateway.example.com>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] is not None
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == "Seu protocolo é 20260312000000017."
    assert "<b>20260312000000017</b>" in mail.get_body(("html",)).get_content()


async def test_text_only_message_is_not_multipart(sink: SMTPSink, transport: SMTPTransport) -> None:
    await transport.send(email())

    assert sink.messages[0].get_content_type() == "text/plain"
    assert sink.messages[0]["Reply-To"] is None


async def test_message_without_a_message_id_gets_one(sink: SMTPSink, transport: SMTPTransport) -> None:
    receipt = await transport.send(email(message_id=None))

    assert receipt.provider_id == sink.messages[0]["Message-ID"]
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", str(receipt.provider_id))


async def test_4xx_refusal_is_transient_and_the_connection_stays_usable(
    sink: SMTPSink, transport: SMTPTransport
) -> None:
    sink.refuse(lambda rcpt: "451 4.3.0 try later" if rcpt.startswith("cliente1@") else None)

    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(email(1))
    await transport.send(email(2))

    assert caught.value.code == "451"
    assert [r.rcpt_tos for r in sink.received] == [["cliente2@example.com"]]
    assert sink.connections == 1


async def test_5xx_refusal_is_permanent(sink: SMTPSink, transport: SMTPTransport) -> None:
    sink.refuse(lambda rcpt: "550 5.1.1 no such user")

    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(email())

    assert caught.value.code == "550"
    assert sink.received == []


async def test_the_envelope_carries_the_bare_addresses(sink: SMTPSink, transport: SMTPTransport) -> None:
    # MAIL and RCPT are written by the transport (smtp.mailbox), as aiosmtplib's mail() and rcpt() would.
    await transport.send(email(1))
    await transport.send(email(2, to="Maria Silva <maria.silva+sac@example.com>",
                               return_path="bounces+n2.abc=example.com@mail.example.com"))
    assert [(r.mail_from, r.rcpt_tos) for r in sink.received] == [
        ("protocolos@example.com", ["cliente1@example.com"]),
        ("bounces+n2.abc=example.com@mail.example.com", ["maria.silva+sac@example.com"]),
    ]


async def test_an_address_that_could_smuggle_a_command_is_refused_before_any_is_sent(
        sink: SMTPSink, transport: SMTPTransport) -> None:
    with pytest.raises(PermanentDeliveryError, match="line break"):
        await transport.send(email(1, to="cliente@example.com>\r\nRCPT TO:<outro@example.com"))
    with pytest.raises(PermanentDeliveryError, match="not permitted in an SMTP mailbox"):
        await transport.send(email(1, to="a b@example.com"))
    assert sink.received == [] and sink.connections == 0


async def test_a_sender_the_relay_refuses_is_transient_and_says_what_to_check(tmp_path: Path) -> None:
    tls = make_certificate(tmp_path / "tls").server_context()
    async with SMTPSink(tls_context=tls, require_starttls=True) as sink:  # "530 Must issue a STARTTLS command first"
        transport = SMTPTransport(smtp_settings(sink.port), SENDER)
        with pytest.raises(TransientDeliveryError, match="refuses mail from our sender") as caught:
            await transport.send(email(1))
        await transport.aclose()
    assert caught.value.code == "530" and sink.received == []


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_BARE, fullmatch=True))
def test_a_bare_address_is_what_parseaddr_gives_back(address: str) -> None:
    assert email_utils.parseaddr(address) == ("", address) and mailbox(address) == address
    assert mailbox(f"Maria <{address}>") == address


async def test_closed_port_is_transient() -> None:
    transport = SMTPTransport(smtp_settings(free_port()), SENDER)

    with pytest.raises(TransientDeliveryError):
        await transport.send(email())
    await transport.aclose()


async def test_outage_then_recovery_on_the_same_port(sink: SMTPSink, transport: SMTPTransport) -> None:
    await transport.send(email(1))
    sink.stop()

    with pytest.raises(TransientDeliveryError):
        await transport.send(email(2))

    sink.start()
    await transport.send(email(3))
    assert [r.rcpt_tos[0] for r in sink.received] == ["cliente1@example.com", "cliente3@example.com"]


async def test_concurrent_sends_share_the_pool(sink: SMTPSink) -> None:
    transport = SMTPTransport(smtp_settings(sink.port, pool_size=4), SENDER)

    await asyncio.gather(*(transport.send(email(n)) for n in range(50)))
    await transport.aclose()

    assert len(sink.received) == 50
    assert 1 <= sink.connections <= 4


async def test_sequential_sends_reuse_one_connection(sink: SMTPSink, transport: SMTPTransport) -> None:
    for n in range(5):
        await transport.send(email(n))

    assert sink.connections == 1


async def test_a_connection_dropped_by_the_server_is_replaced(sink: SMTPSink, transport: SMTPTransport) -> None:
    await transport.send(email(1))
    # Dropped while idle; the client only learns of it when it next uses the connection.
    sink.drop_connections()

    await transport.send(email(2))

    assert len(sink.received) == 2
    assert sink.connections == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Protocolo\r\nBcc: victim@example.com"},
        {"reply_to": "sac@example.com\nBcc: victim@example.com"},
        {"headers": {"X-Protocol": "1\r\nBcc: victim@example.com"}},
        {"headers": {"X-Bad\nName": "1"}},
        {"to": "cliente@example.com\r\nBcc: victim@example.com"},
    ],
)
async def test_line_breaks_in_headers_are_refused(sink: SMTPSink, transport: SMTPTransport, fields: dict) -> None:
    with pytest.raises(PermanentDeliveryError):
        await transport.send(email(**fields))

    assert sink.received == []


async def test_required_starttls_not_offered_is_transient(sink: SMTPSink) -> None:
    transport = SMTPTransport(smtp_settings(sink.port, starttls=True), SENDER)

    with pytest.raises(TransientDeliveryError):
        await transport.send(email())
    await transport.aclose()
    assert sink.received == []


async def test_timeout_after_data_is_an_unknown_outcome(sink: SMTPSink) -> None:
    transport = SMTPTransport(smtp_settings(sink.port, timeout=0.2), SENDER)
    sink.data_delay = 2.0

    with pytest.raises(UnknownOutcomeError):
        await transport.send(email())
    await transport.aclose()

    assert len(sink.received) == 1  # it did arrive: that is why the outcome is "unknown", not "failed"


async def test_aclose_quits_and_a_later_send_reconnects(sink: SMTPSink, transport: SMTPTransport) -> None:
    await transport.send(email(1))
    await transport.aclose()

    await transport.send(email(2))

    assert sink.connections == 2


# The fast writer must say exactly what the email package would.

FAST_CASES = [
    Message(notification_id=1, channel="email", to="maria@example.com", subject="Protocolo 2026 — cobrança indevida",
            text="Olá, Maria.\nLinha com = e acentuação\n.\nfim", html="<p>Olá &amp; até</p>",
            message_id="<notification-1@example.com>", reply_to="sac@example.com"),
    Message(notification_id=2, channel="email", to="joao@example.com", subject="plain ascii", text="x" * 3000,
            message_id="<notification-2@example.com>"),
    Message(notification_id=3, channel="email", to="ana@example.com", subject="Ação " * 40, text="\r\nCRLF\rCR\n",
            message_id="<notification-3@example.com>"),
]


@pytest.mark.parametrize("message", FAST_CASES, ids=["html", "long-line", "long-subject"])
def test_fast_writer_matches_the_email_package(message: Message) -> None:
    import email as email_lib
    import email.policy

    from gateway.delivery.channels.email_message import build_email, email_bytes

    sender = "Atendimento São Paulo <atendimento@example.com>"
    fast = email_bytes(message, sender)
    assert fast is not None
    data, message_id = fast
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= 998
    parsed = email_lib.message_from_bytes(data, policy=email.policy.default)
    reference = build_email(message, sender)
    for name in ("From", "To", "Subject", "Message-ID", "Reply-To"):
        assert str(parsed[name]) == str(reference[name]), name
    assert message_id == reference["Message-ID"]

    def body(m, kind):
        part = m.get_body(preferencelist=(kind,))
        return None if part is None else part.get_content().replace("\r\n", "\n")

    assert body(parsed, "plain") == body(reference, "plain")
    assert body(parsed, "html") == body(reference, "html")


def test_fast_writer_leaves_unusual_addresses_to_the_email_package() -> None:
    from gateway.delivery.channels.email_message import email_bytes

    message = Message(notification_id=1, channel="email", to="joão@exemplo.com.br", text="x", subject="s")
    assert email_bytes(message, "a@example.com") is None


async def test_a_lone_dot_line_arrives_whole(sink: SMTPSink, transport: SMTPTransport) -> None:
    await transport.send(FAST_CASES[0])
    assert "\n.\n" in sink.messages[0].get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("subject", [
    ("Protocolo 20260312000000017 - reclamacao sobre cobranca indevida - Empresa Exemplo S.A. - " * 25)[:2000],
    "Protocolo " + "x" * 1990,
    ("Reclamação =?utf-8?q?nao_decodifique?= — cobrança " * 40)[:2000],
], ids=["ascii-words", "one-long-word", "accents-and-lookalikes"])
async def test_a_2000_character_subject_is_delivered_whole(sink: SMTPSink, transport: SMTPTransport,
                                                          subject: str) -> None:
    # Unfolded, such a Subject line passes 998 octets: the server answers "500 Line too long"
    # and the notice would be failed for good.
    receipt = await transport.send(email(subject=subject))

    assert receipt.status == "sent"
    [received] = sink.messages
    assert received["Subject"] == subject
