"""Every way an email leaves the gateway, read back as a consumer's mail client would.

Three paths write an email: `email_bytes` (the SMTP transport's fast writer), `build_email`
flattened by aiosmtplib (the SMTP transport when the fast writer declines) and the Maildir
transport. Each wire is parsed with Python's `BytesParser(policy=strict)` and read again by
RFC 2047's own rules (`email.header.decode_header`, which drops the whitespace between two
encoded words); the bodies are compared with what `EmailMessage` makes of the same text.
The headers must read back exactly as written: Python's own writer is not the oracle there,
it decodes text that looks like an encoded word and drops a subject's trailing spaces.
"""

from __future__ import annotations

import asyncio
import binascii
import mailbox
import re
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default, strict
from pathlib import Path

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.delivery.channels.base import Message
from gateway.delivery.channels.email_message import build_email, email_bytes
from gateway.delivery.channels.maildir import MaildirTransport
from gateway.delivery.errors import PermanentDeliveryError

FROM, TO, REPLY_TO = "atendimento@example.com", "maria@example.com", "sac@example.com"
COMPANY = "Atendimento São Paulo Companhia Brasileira de Telecomunicações Regionais Ltda"
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # every break str.splitlines() knows
ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?\s]*)\?=")


def quoted(name: str, address: str) -> str:
    """`"name" <address>` meaning exactly `name`: quoted, and `=` escaped so none reads it as an encoded word."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("=", "\\=") + f'" <{address}>'


def message(subject: str, *, to: str = TO, reply_to: str | None = REPLY_TO) -> Message:
    return Message(notification_id=7, channel="email", to=to, subject=subject, reply_to=reply_to,
                   text="Olá, Maria.\nSeu protocolo é 20260312000000017.\n", html="<p>Olá, <b>Maria</b>.</p>",
                   message_id="<notification-7@gateway.example.com>")


@pytest.fixture(scope="module")
def maildir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("maildir")


def wires(m: Message, sender: str, folder: Path) -> dict[str, bytes]:
    fast = email_bytes(m, sender)
    assert fast is not None, "the fast writer declined a message it is there for"
    key = asyncio.run(MaildirTransport(folder, sender).send(m)).provider_id
    return {
        "smtp": fast[0],
        "smtp via the email package": flatten_message(build_email(m, sender)),
        "maildir": mailbox.Maildir(folder, create=False).get_bytes(key),
    }


def fields(wire: bytes) -> tuple[list[str], dict[str, str]]:
    """The header section's lines as sent, and each field unfolded as a reader sees it."""
    head = wire.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii")  # 7-bit headers, whatever the body
    unfolded = {}
    for field in re.split(r"\n(?![ \t])", head):
        name, _, value = field.partition(":")
        unfolded[name.lower()] = value.replace("\n", "").lstrip(" \t")
    return head.split("\n"), unfolded


def rfc2047(raw: str) -> str:
    return "".join(part if isinstance(part, str) else part.decode(charset or "ascii")
                   for part, charset in decode_header(raw))


def rfc2047_name(raw: str, address: str) -> str:
    phrase = raw.removesuffix(f" <{address}>")
    if phrase == raw:
        return ""  # no display name
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return rfc2047(phrase)


def squeezed(text: str) -> str:
    return "".join(text.split())


def body(email: EmailMessage, kind: str) -> str:
    part = email.get_body(preferencelist=(kind,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def assert_reads_back(wire: bytes, m: Message, names: dict[str, tuple[str, str]], *, line: int = 78) -> None:
    """`names`: header -> (display name, address) as the sender meant them."""
    lines, raw = fields(wire)
    assert all(len(x) <= line for x in lines), [x for x in lines if len(x) > line]
    assert all(len(x) <= 998 for x in wire.split(b"\n"))
    for match in ENCODED_WORD.finditer("\n".join(lines)):
        assert len(match.group(0)) <= 75, match.group(0)
        encoded = match.group(3).encode()
        octets = binascii.a2b_base64(encoded) if match.group(2) in "bB" else binascii.a2b_qp(encoded, header=True)
        octets.decode("utf-8")  # each word holds whole characters: no UTF-8 sequence is split

    parsed = BytesParser(policy=strict).parsebytes(wire)
    assert {k.lower() for k in parsed.keys()} == {"from", "to", "subject", "message-id", "date", "mime-version",
                                                 "content-type", *(["reply-to"] if m.reply_to else [])}
    assert str(parsed["Subject"]) == m.subject
    assert rfc2047(raw["subject"]) == m.subject
    assert parsed["Message-ID"] == m.message_id
    for header, (name, address) in names.items():
        [mailbox_] = parsed[header].addresses
        assert mailbox_.addr_spec == address
        assert rfc2047_name(raw[header.lower()], address) == name
        if ENCODED_WORD.search(raw[header.lower()]):
            # Python 3.11 reads whitespace in encoded names loosely: it keeps the space between two
            # encoded words, which RFC 2047 drops, and folds runs of it. The words are the same.
            assert squeezed(mailbox_.display_name) == squeezed(name)
        else:
            assert mailbox_.display_name == name

    reference = EmailMessage(policy=default)
    reference.set_content(m.text)
    reference.add_alternative(m.html, subtype="html")
    assert parsed.get_content_type() == reference.get_content_type() == "multipart/alternative"
    assert body(parsed, "plain") == body(reference, "plain")
    assert body(parsed, "html") == body(reference, "html")


def check_subject(subject: str, folder: Path) -> None:
    m, sender = message(subject), quoted(COMPANY, FROM)
    for path, wire in wires(m, sender, folder).items():
        try:
            assert_reads_back(wire, m, {"From": (COMPANY, FROM), "To": ("", TO), "Reply-To": ("", REPLY_TO)})
        except AssertionError as exc:
            raise AssertionError(f"{path}: {exc}\n{wire[:1500]!r}") from exc


def check_name(name: str, folder: Path) -> None:
    m = message("Protocolo 20260312000000017", to=quoted(name, TO), reply_to=quoted(name, REPLY_TO))
    for path, wire in wires(m, quoted(name, FROM), folder).items():
        try:
            assert_reads_back(wire, m, {"From": (name, FROM), "To": (name, TO), "Reply-To": (name, REPLY_TO)})
        except AssertionError as exc:
            raise AssertionError(f"{path}: {exc}\n{wire[:1500]!r}") from exc


# What the issue found, case by case.

LONG_ASCII = ("Protocolo 20260312000000017 - Reclamacao sobre cobranca indevida na fatura - "
              "Empresa Exemplo Telecomunicacoes S.A. - categoria cobranca ") * 20


@pytest.mark.parametrize("subject", [
    LONG_ASCII[:2000],
    "x" * 2000,
    "Pedido " + "=?utf-8?q?nao_decodifique?=" * 60 + " fim",
    "a" + " " * 300 + "b",
    "\t  espaços nas pontas e no\t\tmeio  ",
    "Protocolo " * 200,
], ids=["words", "no-space", "encoded-lookalikes", "long-gap", "tabs-and-ends", "trailing-space"])
def test_a_long_ascii_subject_is_folded_and_reads_back_whole(subject: str, maildir: Path) -> None:
    check_subject(subject, maildir)


@pytest.mark.parametrize("subject", [
    "Pedido =?utf-8?q?nao_decodifique?= fim",
    "=?UTF-8?B?w6k=?=",
    "Pedido=?x?=fim e ?= e =?",
])
def test_text_that_looks_like_an_encoded_word_is_sent_encoded(subject: str, maildir: Path) -> None:
    check_subject(subject, maildir)
    data, _ = email_bytes(message(subject), FROM) or (b"", "")
    subject_line = fields(data)[1]["subject"]
    assert "=?utf-8?q?nao_decodifique?=" not in subject_line and "=?UTF-8?B?w6k=?=" not in subject_line


@pytest.mark.parametrize("subject", [
    "Ação " * 40,
    "ção" * 300,
    "Reclamação nº 20260312000000017 — cobrança indevida, pedido de revisão e devolução em dobro",
    "日本語の件名" * 30,
    "😀👩🏽‍⚖️ e\u0301 مرحبا שלום" * 20,
])
def test_encoded_words_stay_within_75_characters(subject: str, maildir: Path) -> None:
    check_subject(subject, maildir)


@pytest.mark.parametrize("name", [
    COMPANY,
    "Ωμέγα Αλφα" * 12,
    "Serviço de Atendimento ao Consumidor (SAC) — Empresa Exemplo S.A., São Paulo/SP",
    "Empresa Exemplo S.A.",
    "Loja =?utf-8?q?falsa?= Ltda",
    '"Aspas" e \\barras\\',
    "Nome\tcom  espaços ",
])
def test_names_in_addresses_read_back_whole(name: str, maildir: Path) -> None:
    check_name(name, maildir)


def test_a_long_accented_from_name_is_in_encoded_words_of_75_at_most(maildir: Path) -> None:
    check_name(COMPANY, maildir)
    data, _ = email_bytes(message("s"), f"{COMPANY} <{FROM}>") or (b"", "")
    words = [w.group(0) for w in ENCODED_WORD.finditer(fields(data)[1]["from"])]
    assert words and max(len(w) for w in words) <= 75
    assert BytesParser(policy=strict).parsebytes(data)["From"].addresses[0].display_name == COMPANY


def test_an_address_is_never_broken_even_past_78(maildir: Path) -> None:
    address = "protocolos.atendimento.consumidor@" + "setor-de-atendimento." * 9 + "example.com"
    m = message("Protocolo", to=address, reply_to=quoted("Central de relacionamento com o cliente", address))
    for wire in wires(m, quoted(COMPANY, FROM), maildir).values():
        assert_reads_back(wire, m, {"From": (COMPANY, FROM), "To": ("", address),
                                    "Reply-To": ("Central de relacionamento com o cliente", address)}, line=998)
        assert f"<{address}>".encode() in wire and f"To: {address}".encode() in wire


def test_an_address_no_line_can_hold_is_refused_before_the_server_refuses_it() -> None:
    m = message("Protocolo", to="a" * 990 + "@example.com")
    with pytest.raises(PermanentDeliveryError, match="998"):
        email_bytes(m, FROM)
    with pytest.raises(PermanentDeliveryError, match="998"):
        build_email(m, FROM)


@pytest.mark.parametrize("field", ["subject", "to", "reply_to", "sender"])
@pytest.mark.parametrize("brk", list(LINE_BREAKS), ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_a_line_break_anywhere_in_a_header_is_refused(field: str, brk: str) -> None:
    sender = quoted(f"Atendimento{brk}", FROM) if field == "sender" else FROM
    m = message(f"Protocolo{brk}Bcc: x@example.net" if field == "subject" else "Protocolo",
                to=f"{TO}{brk}" if field == "to" else TO,
                reply_to=f"{REPLY_TO}{brk}" if field == "reply_to" else REPLY_TO)
    with pytest.raises(PermanentDeliveryError):
        email_bytes(m, sender)
    with pytest.raises(PermanentDeliveryError):
        build_email(m, sender)


def test_text_no_charset_can_carry_is_refused_not_crashed() -> None:
    m = message("Protocolo \ud800")  # a lone surrogate, as a broken decoder upstream leaves one
    with pytest.raises(PermanentDeliveryError):
        email_bytes(m, FROM)
    with pytest.raises(PermanentDeliveryError):
        build_email(m, FROM)


# Any text a template can put on one line.

PIECES = ["=?", "?=", "=?utf-8?q?nao_decodifique?=", "=?UTF-8?B?w6k=?=", "\t", " ", "   ", "😀", "👩🏽‍⚖️",
          "e\u0301", "\u0301", "مرحبا", "שלום", "\u200f", "\u202e", "\ufeff", "\u00a0", "ção", "\x00", "\x1b",
          "\x7f", '"', "\\", "(", ")", "<", ">", ",", ";", ":", "@", ".", "_", "=", "?"]
ONE_LINE = st.characters(exclude_categories=("Cs",), exclude_characters=LINE_BREAKS)


def header_text(longest_run: int) -> st.SearchStrategy[str]:
    runs = st.builds(lambda text, n: text * n, st.sampled_from(["x", "ç", "😀", " ", "\t", "ab ", "日本", "=?"]),
                     st.integers(1, longest_run))
    return st.lists(st.one_of(st.text(ONE_LINE, max_size=30), st.sampled_from(PIECES), runs), max_size=12).map("".join)


# The fast suite reaches about 2 KB a header; the slow run several KB (Python's parser, the
# oracle, takes most of the time: ~0.3 s to read back a 4 KB name).
HEADER_TEXT, LONG_HEADER_TEXT = header_text(200), header_text(1500)
FEW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FEW
@given(subject=HEADER_TEXT)
def test_any_subject_reads_back_as_written(maildir: Path, subject: str) -> None:
    check_subject(subject, maildir)


@FEW
@given(name=HEADER_TEXT)
def test_any_name_reads_back_as_written(maildir: Path, name: str) -> None:
    check_name(name, maildir)


@pytest.mark.slow
@MANY
@given(subject=LONG_HEADER_TEXT)
def test_any_subject_reads_back_as_written_many(maildir: Path, subject: str) -> None:
    check_subject(subject, maildir)


@pytest.mark.slow
@MANY
@given(name=LONG_HEADER_TEXT)
def test_any_name_reads_back_as_written_many(maildir: Path, name: str) -> None:
    check_name(name, maildir)


def test_the_mime_bench_runs_and_reports_every_writer(tmp_path: Path) -> None:
    from bench import mime

    assert mime.main(["--smoke", "--out", str(tmp_path)]) == 0
    [report] = tmp_path.glob("smoke-*.md")
    text = report.read_text(encoding="utf-8")
    for kind in mime.SUBJECTS:
        assert re.search(rf"^\| {kind} \(\d+ chars\) \| [\d,]+ \([\d,]+ B\) \| [\d,]+ \([\d,]+ B\) \|$", text, re.M), text
