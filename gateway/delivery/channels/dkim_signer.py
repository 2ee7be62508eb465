"""DKIM signatures (RFC 6376, rsa-sha256, relaxed/simple) with dkimpy, over the headers a
receiver and RFC 8058 care about. The key is read once, at start-up, from a file only its
owner may read."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import dkim

from gateway.config import ConfigError

SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
                  b"content-type", b"list-unsubscribe", b"list-unsubscribe-post")


class DKIMSigner:
    def __init__(self, selector: str, domain: str, private_key_file: Path) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self._key = read_private_key(private_key_file)

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header first."""
        present = {line.split(b":", 1)[0].strip().lower()
                   for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line and line[:1] not in b" \t"}
        headers = [h for h in SIGNED_HEADERS if h in present]
        return dkim.sign(message, self.selector, self.domain, self._key, include_headers=headers) + message

    async def sign_async(self, message: bytes) -> bytes:
        # dkimpy's RSA is pure Python (milliseconds a message): off the event loop.
        return await asyncio.to_thread(self.sign, message)


def read_private_key(path: Path) -> bytes:
    """The key's bytes; a file others may read (or that is missing, or not a key) stops start-up in one line."""
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"settings: email.dkim.private_key_file: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"settings: email.dkim.private_key_file: {path} is mode {stat.S_IMODE(mode):o}; "
                          f"a private key must be readable by its owner only (chmod 600 {path})")
    if b"PRIVATE KEY-----" not in key:
        raise ConfigError(f"settings: email.dkim.private_key_file: {path} holds no PEM private key")
    return key
