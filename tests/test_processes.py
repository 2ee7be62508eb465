"""Several gateway processes on one PostgreSQL behave as one gateway.

Real `protocol-gateway run` subprocesses, the real aiosmtpd server, a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

import pytest

from tests.fakes.smtp_sink import SMTPSink
from tests.fault_helpers import prefill
from tests.helpers import free_port
from tests.test_e2e import Daemon, start_daemon, wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine_name() -> str:
    return "postgresql"


def daemon_env(db_url: str, sink: SMTPSink, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE__URL": db_url,
        "GATEWAY_EMAIL__TRANSPORT": "smtp",
        "GATEWAY_EMAIL__FROM": "gw@example.com",
        "GATEWAY_EMAIL__SMTP__HOST": sink.host,
        "GATEWAY_EMAIL__SMTP__PORT": str(sink.port),
        "GATEWAY_EMAIL__SMTP__STARTTLS": "false",
        "GATEWAY_DISPATCH__POLL_INTERVAL": "200ms",
        "GATEWAY_SWEEPS__ENABLED": "false",
        **extra,
    }


async def start_pair(tmp_path: Path, db_url: str, sink: SMTPSink, **extra: str) -> list[Daemon]:
    daemons = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        daemons.append(await start_daemon(folder, port, env=daemon_env(db_url, sink, GATEWAY_HTTP__PORT=str(port),
                                                                        **extra)))
    return daemons


def message_ids(sink: SMTPSink) -> collections.Counter[str]:
    return collections.Counter(m["Message-ID"] for m in sink.messages)


def sent_by(daemon: Daemon) -> int:
    return sum(1 for line in daemon.log_lines() if line.get("action") == "outbox_sent")


@pytest.mark.parametrize("count", [pytest.param(2000, marks=pytest.mark.slow), 600])
async def test_two_processes_send_each_notification_exactly_once(tmp_path, db_url, sink, count):
    # Both up first, then the work arrives (with NOTIFY): both must take a share of it.
    daemons = await start_pair(tmp_path, db_url, sink)
    await prefill(db_url, count)
    try:
        await wait_for(lambda: len(sink.messages) >= count, timeout=120)
        await asyncio.sleep(0.5)  # anything sent twice would arrive now
    finally:
        codes = [await d.stop() for d in daemons]
    assert codes == [0, 0]
    ids = message_ids(sink)
    assert len(ids) == count and max(ids.values()) == 1
    assert sent_by(daemons[0]) + sent_by(daemons[1]) == count
    assert sent_by(daemons[0]) > 0 and sent_by(daemons[1]) > 0  # both took a share


async def test_sigterm_one_process_and_the_other_finishes_without_duplicates(tmp_path, db_url, sink):
    count = 300
    sink.data_delay = 0.1  # slow enough (about 80 messages a second) that the stop lands mid-work
    await prefill(db_url, count)
    first, second = await start_pair(tmp_path, db_url, sink)
    try:
        await wait_for(lambda: len(sink.messages) >= 40, timeout=60)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Counted when the signal goes, not once the process has exited: while it drains what it
        # holds, the other process goes on sending, and on a loaded machine may finish them all.
        signalled_at = len(sink.messages)
        assert await first.stop(signal.SIGTERM) == 0
        assert loop.time() - started < 15  # within the shutdown timeout (10 s) and change
        assert signalled_at < count  # the stop landed mid-work
        await wait_for(lambda: len(sink.messages) >= count, timeout=120)
        await asyncio.sleep(0.5)
    finally:
        await second.stop()
    ids = message_ids(sink)
    assert len(ids) == count and max(ids.values()) == 1  # SIGTERM: no duplicate at all
    assert any(line.get("action") == "dispatcher_stopped" for line in first.log_lines())


async def test_an_enqueue_elsewhere_wakes_an_idle_process_at_once(tmp_path, db_url, sink):
    port = free_port()
    env = daemon_env(db_url, sink, GATEWAY_HTTP__PORT=str(port), GATEWAY_DISPATCH__POLL_INTERVAL="60s")
    daemon = await start_daemon(tmp_path, port, env=env)
    try:
        await asyncio.sleep(1.0)  # let it finish its start-up poll and settle into the 60 s wait
        loop = asyncio.get_running_loop()
        started = loop.time()
        await prefill(db_url, 1)  # another process's transaction, with NOTIFY at commit
        await wait_for(lambda: len(sink.messages) == 1, timeout=20)
        assert loop.time() - started < 10  # far sooner than the 60 s poll
    finally:
        assert await daemon.stop() == 0
