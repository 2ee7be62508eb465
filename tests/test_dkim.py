"""DKIM signing with dkimpy: what the relay receives verifies against the public key (dkimpy's
own verifier, the DNS answer given by the test); a key file others may read stops start-up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dkim
import pytest

from gateway.cli import main
from gateway.config import ConfigError, SMTPSettings, load_settings
from gateway.delivery.channels.base import Message
from gateway.delivery.channels.dkim_signer import DKIMSigner
from gateway.delivery.channels.smtp import SMTPTransport
from tests.fakes.smtp_sink import SMTPSink

SAMPLES = Path(__file__).parent / "samples"
SENDER = "Atendimento <atendimento@example.com>"


def private_key(tmp_path: Path, mode: int = 0o600) -> Path:
    """The test key (tests/samples, made for these tests only) copied with the mode asked for."""
    path = tmp_path / "dkim.pem"
    shutil.copy(SAMPLES / "dkim_test_key.pem", path)
    os.chmod(path, mode)
    return path


def dns(name: bytes, timeout: int = 5) -> bytes:
    """The TXT record `gw._domainkey.example.com` would hold."""
    assert name == b"gw._domainkey.example.com."
    lines = (SAMPLES / "dkim_test_key.pub").read_bytes().splitlines()
    return b"v=DKIM1; k=rsa; p=" + b"".join(line for line in lines if not line.startswith(b"-----"))


@pytest.mark.parametrize("headers", [{}, {"List-Unsubscribe": "<https://sac.example/u/1.abc>",
                                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}])
async def test_what_the_relay_receives_carries_a_signature_that_verifies(
        tmp_path: Path, sink: SMTPSink, headers: dict[str, str]) -> None:
    signer = DKIMSigner("gw", "example.com", private_key(tmp_path))
    transport = SMTPTransport(SMTPSettings(host=sink.host, port=sink.port, starttls=False), SENDER, signer=signer)
    try:
        await transport.send(Message(notification_id=7, channel="email", to="maria@example.com",
                                     text="Seu protocolo é 2026112200000001.\n", subject="Protocolo aberto",
                                     html="<p>Seu protocolo</p>", message_id="<notification-7@example.com>",
                                     headers=headers))
    finally:
        await transport.aclose()
    raw = sink.received[-1].raw
    assert raw.startswith(b"DKIM-Signature:") and b"d=example.com" in raw and b"s=gw" in raw
    assert dkim.verify(raw, dnsfunc=dns)
    signature = raw.split(b"\r\n\r\n", 1)[0].split(b"DKIM-Signature:", 1)[1]
    if headers:  # RFC 8058 asks for the one-click headers to be signed
        assert b"list-unsubscribe" in signature.lower() and b"list-unsubscribe-post" in signature.lower()
    tampered = raw.replace(b"Protocolo aberto", b"Protocolo fechado")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_key_file_others_may_read_stops_start_up_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = private_key(tmp_path, 0o644)
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/gw.db"\n[http]\nport = 0\n'
                        f'[email]\ntransport = "smtp"\nfrom = "a@example.com"\n'
                        f'[email.dkim]\nselector = "gw"\ndomain = "example.com"\nprivate_key_file = "{key}"\n')
    assert main(["--config", str(settings), "run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("settings: email.dkim.private_key_file: ")
    assert "mode 644" in err and "chmod 600" in err


def test_dkim_needs_all_three_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={"email": {"dkim": {"selector": "gw"}}})
    assert str(caught.value).startswith("settings: email.dkim.domain: required when email.dkim.selector is set")
