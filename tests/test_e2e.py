"""The daemon started as a user starts it: `protocol-gateway run` as a subprocess, HTTP to it,
the email found in a real SMTP server and the SMS at the fake Twilio API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.smtp_sink import SMTPSink
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import free_port, opened_event

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gateway.cli"]
START_TIMEOUT = 30.0  # seconds for the daemon to answer /healthz on a loaded machine


class Daemon:
    def __init__(self, process: asyncio.subprocess.Process, url: str, stderr_path: Path) -> None:
        self.process, self.url, self.stderr_path = process, url, stderr_path

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr_path.read_text().splitlines() if line.strip()]

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout=30)


async def start_daemon(cwd: Path, port: int, *args: str, env: dict[str, str] | None = None) -> Daemon:
    stderr_path = cwd / "daemon.stderr"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environ.update(env or {})
    with open(stderr_path, "wb") as stderr:
        process = await asyncio.create_subprocess_exec(*CLI, "run", *args, cwd=cwd, env=environ,
                                                       stdout=subprocess.DEVNULL, stderr=stderr)
    daemon = Daemon(process, f"http://127.0.0.1:{port}", stderr_path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"daemon exited {process.returncode}: {stderr_path.read_text()[-2000:]}")
            try:
                async with http.get(f"{daemon.url}/healthz") as r:
                    if r.status == 200:
                        return daemon
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                await daemon.stop(signal.SIGKILL)
                raise AssertionError("daemon did not answer /healthz: " + stderr_path.read_text()[-2000:])
            await asyncio.sleep(0.1)


async def wait_for(predicate, timeout: float = 15.0) -> None:
    """Poll a condition on real servers; the daemon runs in another process on its own clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def write_daemon_settings(folder: Path, *, db_url: str, port: int, sink: SMTPSink, twilio: FakeTwilio, key_file: str,
                          poll_interval: str, public_url: str | None = None, reply_to: str | None = None) -> None:
    """settings.toml for a daemon sending email to `sink` and SMS to `twilio` (the auth token
    stays out of the file: pass it in the environment, as the README says to)."""
    http_extra = f'public_url = "{public_url}"\n' if public_url else ""
    email_extra = f'reply_to = "{reply_to}"\n' if reply_to else ""
    (folder / "settings.toml").write_text(f"""
[database]
url = "{db_url}"
[http]
port = {port}
{http_extra}[email]
transport = "smtp"
from = "Atendimento <atendimento@example.com>"
{email_extra}[email.smtp]
host = "{sink.host}"
port = {sink.port}
starttls = false
[sms]
transport = "twilio"
[sms.twilio]
account_sid = "{twilio.account_sid}"
from = "+15005550006"
api_base_url = "{twilio.base_url}"
[auth]
bootstrap_key_file = "{key_file}"
[dispatch]
poll_interval = "{poll_interval}"
""")


async def test_event_in_email_and_sms_out(tmp_path: Path, sink: SMTPSink, twilio: FakeTwilio, db_url: str):
    port = free_port()
    write_daemon_settings(tmp_path, db_url=db_url, port=port, sink=sink, twilio=twilio,
                          key_file="secrets/admin.key", poll_interval="200ms",
                          public_url="https://gw.example.com", reply_to="sac@example.com")
    # The secret comes from the environment, as the README says it should.
    daemon = await start_daemon(tmp_path, port, "--config", "settings.toml",
                                env={"GATEWAY_SMS__TWILIO__AUTH_TOKEN": twilio.auth_token})
    try:
        key_file = tmp_path / "secrets" / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{daemon.url}/v1/events", data=json.dumps(opened_event()), headers=headers) as r:
                assert r.status == 202, await r.text()
                number = (await r.json())["protocol"]["number"]
            await wait_for(lambda: sink.messages and twilio.messages)
            assert number in sink.messages[0]["Subject"]
            assert number in twilio.messages[0].form["Body"]
            assert twilio.messages[0].form["StatusCallback"].startswith("https://gw.example.com/v1/webhooks/twilio/status")
            # The outcome is committed on the dispatcher's next turn, a moment after the servers have it.
            statuses: dict[str, str] = {}
            for _ in range(100):
                async with http.get(f"{daemon.url}/v1/protocols/{number}", headers=headers) as r:
                    statuses = {n["channel"]: n["status"] for n in (await r.json())["notifications"]}
                if "sending" not in statuses.values():
                    break
                await asyncio.sleep(0.05)
        assert statuses == {"email": "sent", "sms": "sent"}
    finally:
        code = await daemon.stop()
    assert code == 0
    lines = daemon.log_lines()
    assert any(line.get("action") == "outbox_sent" for line in lines)
    assert any(line.get("action") == "admin_key_created" for line in lines)
    # What start-up built was frozen before serving (gateway/daemon/heap.py), and the above still worked.
    (started,) = [line for line in lines if line.get("action") == "http_started"]
    assert started["heap_frozen"] > 10_000
    text = daemon.stderr_path.read_text()
    # Personal data and secrets never appear in the logs unmasked.
    for secret in ("maria@example.com", "+5511987654321", "5511987654321", "Maria Silva", key, twilio.auth_token):
        assert secret not in text


async def test_twilio_with_a_loopback_public_url_is_a_warning_at_start_and_in_readyz(
        tmp_path: Path, sink: SMTPSink, twilio: FakeTwilio, db_url: str):
    port = free_port()
    write_daemon_settings(tmp_path, db_url=db_url, port=port, sink=sink, twilio=twilio,
                          key_file="secrets/admin.key", poll_interval="200ms")  # no public_url: it follows the port
    daemon = await start_daemon(tmp_path, port, "--config", "settings.toml",
                                env={"GATEWAY_SMS__TWILIO__AUTH_TOKEN": twilio.auth_token})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{daemon.url}/readyz") as r:
                body = await r.json()
        assert r.status == 200 and body["status"] == "ready"  # it works; receipts will not come
        (warning,) = body["warnings"]
        assert warning.startswith(f"http.public_url is http://127.0.0.1:{port}: Twilio cannot reach it")
    finally:
        assert await daemon.stop() == 0
    logged = [line for line in daemon.log_lines() if line.get("action") == "public_url_loopback"]
    assert len(logged) == 1 and logged[0]["level"] == "warning" and logged[0]["message"] == warning


async def test_embedded_defaults_from_the_shipped_settings(tmp_path: Path):
    shutil.copy(ROOT / "settings.toml", tmp_path / "settings.toml")
    port = free_port()
    daemon = await start_daemon(tmp_path, port, env={"GATEWAY_HTTP__PORT": str(port)})
    try:
        key = (tmp_path / "var" / "admin.key").read_text().strip()
        assert stat.S_IMODE((tmp_path / "var" / "admin.key").stat().st_mode) == 0o600
        assert key not in daemon.stderr_path.read_text()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{daemon.url}/v1/events", data=json.dumps(opened_event()), headers=headers) as r:
                assert r.status == 202
                number = (await r.json())["protocol"]["number"]
        maildir_new = tmp_path / "var" / "mail" / "new"
        sms_file = tmp_path / "var" / "sms.jsonl"
        await wait_for(lambda: maildir_new.is_dir() and any(maildir_new.iterdir()) and sms_file.exists()
                       and sms_file.read_text().strip())
        assert number in next(maildir_new.iterdir()).read_text(encoding="utf-8")
        assert number in json.loads(sms_file.read_text().splitlines()[0])["body"]
        assert (tmp_path / "var" / "gateway.db").exists()
    finally:
        assert await daemon.stop() == 0


def test_a_wrong_setting_stops_start_up_with_one_line(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_HTTP__PORT"] = "eighty"
    result = subprocess.run([*CLI, "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("settings: http.port:")


def test_keys_create_list_revoke(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert cli("migrate").returncode == 0  # keys never create the database: run and migrate do
    created = cli("keys", "create", "crm", "--scopes", "events:write,protocols:read")
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"pgw_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n", created.stdout)  # the key alone
    assert cli("keys", "create", "crm", "--scopes", "admin").returncode == 1  # names are unique
    assert cli("keys", "create", "x", "--scopes", "root").returncode == 1
    listed = cli("keys", "list")
    assert "crm" in listed.stdout and "events:write,protocols:read" in listed.stdout
    assert created.stdout.strip() not in listed.stdout + listed.stderr
    assert cli("keys", "revoke", "crm").returncode == 0
    assert "revoked" in cli("keys", "list").stdout


def test_the_demo_prints_what_the_consumer_received(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    result = subprocess.run([*CLI, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    number = re.search(r'"number": "(\d+)"', result.stdout).group(1)
    assert "=== email" in result.stdout and "=== SMS" in result.stdout and "=== WhatsApp" in result.stdout
    assert result.stdout.count(number) >= 4  # the answer, the email, the SMS, the WhatsApp message
    assert "notification 1 (email): sent" in result.stdout and "notification 3 (whatsapp): sent" in result.stdout


def test_a_non_editable_install_runs_from_another_folder(tmp_path: Path):
    """`pip install .` ships the templates and migrations inside the package."""
    site, elsewhere, source = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "source"
    elsewhere.mkdir()
    # A copy without build/: setuptools reuses build/lib, which may hold files since deleted.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "var", "node_modules", ".hypothesis", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install in the venv
    where = subprocess.run([sys.executable, "-c", "import gateway; print(gateway.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site))
    result = subprocess.run([*CLI, "demo"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "=== email" in result.stdout and "=== SMS" in result.stdout
