"""`protocol-gateway demo`: the whole path in a temporary folder, shown as the consumer sees it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import aiohttp

from gateway.api import keys
from gateway.app import build_runtime, start
from gateway.config import load_settings

SAMPLE = {
    "specversion": "1.0",
    "id": "demo-1",
    "source": "urn:demo:crm",
    "type": "protocol.opened",
    "data": {
        "subject": "Cobrança indevida na fatura de outubro",
        "channel": "phone",
        "consumer": {"name": "Maria Silva", "email": "maria@example.com", "phone": "+5511987654321",
                     "whatsapp": "+5511987654321"},
    },
}
WAIT = 10.0  # seconds for the messages to leave before the demo gives up


async def run_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="protocol-gateway-demo-") as folder:
        base = Path(folder)
        settings = load_settings(environ={}, discover=False, overrides={
            "database": {"url": f"sqlite+aiosqlite:///{base / 'gateway.db'}"},
            "email": {"maildir": str(base / "mail"), "from": "Atendimento <atendimento@example.com>"},
            "sms": {"file": str(base / "sms.jsonl")},
            "whatsapp": {"file": str(base / "whatsapp.jsonl")},
            "http": {"port": 0},
        })
        runtime = build_runtime(settings)
        runner, port = await start(runtime, "127.0.0.1", 0)
        try:
            key = await keys.create_key(runtime.db, "demo", ["admin"], now=datetime.now(timezone.utc))
            url = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/v1/events", data=json.dumps(SAMPLE), headers=headers) as response:
                    answer = await response.json()
                out.write(f"POST /v1/events -> {response.status}\n{json.dumps(answer, indent=2)}\n\n")
                number = answer["protocol"]["number"]
                protocol = await _wait_sent(http, f"{url}/v1/protocols/{number}", headers)
            for n in protocol["notifications"]:
                out.write(f"notification {n['id']} ({n['channel']}): {n['status']}\n")
            out.write("\n" + _show_email(base / "mail") + "\n" + _show_line(base / "sms.jsonl", "SMS")
                      + "\n" + _show_line(base / "whatsapp.jsonl", "WhatsApp"))
            return 0
        finally:
            await runner.cleanup()


async def _wait_sent(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        async with http.get(url, headers=headers) as response:
            protocol = await response.json()
        if all(n["status"] not in ("queued", "sending") for n in protocol["notifications"]):
            return protocol
        if asyncio.get_running_loop().time() > deadline:
            return protocol
        await asyncio.sleep(0.05)


def _show_email(maildir: Path) -> str:
    files = sorted((maildir / "new").glob("*"))
    if not files:
        return "(no email)\n"
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    return (f"=== email in {files[0]} ===\nTo: {message['To']}\nSubject: {message['Subject']}\n\n"
            f"{body.get_content() if body else ''}\n")


def _show_line(path: Path, what: str) -> str:
    """The first message of a JSON-lines transport (the SMS file, the WhatsApp file)."""
    if not path.exists():
        return f"(no {what})\n"
    line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    return f"=== {what} in {path} ===\nTo: {line['to']}\n\n{line['body']}\n"
