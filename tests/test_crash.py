"""Crash and restart: `protocol-gateway run` killed in the middle of sending loses nothing.

Hundreds of notifications queued (thousands under `make test-all`), the SMTP sink slowed so
a kill lands mid-send, then the daemon is killed and started again on the same database:

- SIGKILL: every notification reaches the sink (by its Message-ID), and the ones sent twice
  are no more than the sends that were in flight at the kill or finished and not yet recorded
  (at most `dispatch.workers` + the dispatcher's RECORD_AFTER), each of them marked
  `duplicate_possible` in the record. The short `dispatch.lease` brings
  the dead process's claims back quickly.
- SIGTERM: the daemon finishes its sends in flight, records them, exits 0 within the shutdown
  timeout; after the restart nothing was sent twice.

On SQLite and on PostgreSQL, with the real aiosmtpd server.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.delivery.dispatcher import CLAIM_AHEAD, RECORD_AFTER
from tests.fakes.smtp_sink import SMTPSink
from tests.fault_helpers import (
    expected_message_id,
    installation_of,
    message_ids,
    notification_rows,
    prefill,
    smtp_env,
    statuses,
)
from tests.helpers import free_port
from tests.test_e2e import Daemon, start_daemon, wait_for

WORKERS = 8            # dispatch.workers: the most sends in flight at once, so the most duplicates
LEASE = "1s"           # a killed process's claims come back after this (a send takes ~30 ms)
SHUTDOWN_TIMEOUT = 5.0  # dispatch.shutdown_timeout, seconds
DATA_DELAY = 0.03      # seconds the sink waits before answering DATA: ~130 messages a second on 4 connections
COUNTS = [200, pytest.param(3000, marks=pytest.mark.slow)]


@pytest.fixture
async def sink() -> AsyncIterator[SMTPSink]:
    async with SMTPSink() as s:
        s.data_delay = DATA_DELAY
        yield s


async def run_daemon(folder: Path, db_url: str, sink: SMTPSink) -> Daemon:
    folder.mkdir()
    port = free_port()
    return await start_daemon(folder, port, env=smtp_env(
        db_url, sink, port,
        GATEWAY_DISPATCH__WORKERS=str(WORKERS),
        GATEWAY_DISPATCH__LEASE=LEASE,
        GATEWAY_DISPATCH__SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT:g}s",
    ))


async def wait_until_all_sent(db_url: str, count: int, timeout: float) -> None:
    """Poll the record (not the sink): once every row is `sent`, nothing more can go out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await statuses(db_url))["sent"] < count:
        assert loop.time() < deadline, f"not all sent in time: {dict(await statuses(db_url))}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("count", COUNTS)
async def test_sigkill_mid_send_loses_nothing_and_duplicates_stay_within_the_sends_in_flight(
        tmp_path: Path, db_url: str, sink: SMTPSink, count: int) -> None:
    await prefill(db_url, count)
    first = await run_daemon(tmp_path / "first", db_url, sink)
    try:
        await wait_for(lambda: len(sink.messages) >= count // 3, timeout=120)
    finally:
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    at_kill = await statuses(db_url)
    received_at_kill = len(sink.messages)
    assert at_kill["sent"] < count, "the kill came too late to land mid-send"
    claimed = at_kill["sending"]  # in flight, finished and not yet recorded, or claimed ahead
    assert claimed <= WORKERS + CLAIM_AHEAD

    second = await run_daemon(tmp_path / "second", db_url, sink)
    try:
        await wait_until_all_sent(db_url, count, timeout=180)
    finally:
        assert await second.stop() == 0

    ids = message_ids(sink)
    rows = await notification_rows(db_url)
    key = await installation_of(db_url)
    assert set(ids) == {expected_message_id(r.id, key) for r in rows}  # every one delivered
    twice = {mid: n for mid, n in ids.items() if n > 1}
    duplicates = sum(n - 1 for n in twice.values())
    print(f"\nSIGKILL [{count}]: queued at the kill {count - at_kill['sent']} (claimed {claimed}), "
          f"received before the kill {received_at_kill}, delivered after restart "
          f"{len(sink.messages) - received_at_kill}, duplicates {duplicates}")
    assert max(ids.values()) <= 2
    assert duplicates <= min(claimed, WORKERS + RECORD_AFTER)
    # A duplicate is never silent: the record of each one sent twice says it may have been.
    for row in rows:
        if expected_message_id(row.id, key) in twice:
            assert row.duplicate_possible and row.attempts >= 2


@pytest.mark.parametrize("engine_name", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
@pytest.mark.parametrize("count", COUNTS)
async def test_sigterm_mid_send_drains_exits_0_and_sends_nothing_twice(
        tmp_path: Path, db_url: str, sink: SMTPSink, count: int) -> None:
    await prefill(db_url, count)
    first = await run_daemon(tmp_path / "first", db_url, sink)
    try:
        await wait_for(lambda: len(sink.messages) >= count // 3, timeout=120)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        code = await first.stop(signal.SIGTERM)
        took = loop.time() - signalled
    finally:
        await first.stop(signal.SIGKILL)
    assert code == 0
    # aiohttp's shutdown, then the dispatcher's drain within dispatch.shutdown_timeout, then the exit.
    assert took < SHUTDOWN_TIMEOUT + 5
    at_stop = await statuses(db_url)
    assert at_stop["sent"] < count, "the stop came too late to land mid-send"
    assert at_stop["sending"] == 0  # every send in flight was finished and recorded (or released)
    actions = [line.get("action") for line in first.log_lines()]
    assert "dispatcher_stopped" in actions

    second = await run_daemon(tmp_path / "second", db_url, sink)
    try:
        await wait_until_all_sent(db_url, count, timeout=180)
    finally:
        assert await second.stop() == 0

    ids = message_ids(sink)
    rows = await notification_rows(db_url)
    key = await installation_of(db_url)
    print(f"\nSIGTERM [{count}]: queued at the stop {count - at_stop['sent']}, stopped in {took:.2f} s, "
          f"duplicates {sum(n - 1 for n in ids.values())}")
    assert set(ids) == {expected_message_id(r.id, key) for r in rows}
    assert max(ids.values()) == 1  # SIGTERM: no duplicate at all
    assert not any(r.duplicate_possible for r in rows)


@pytest.mark.parametrize("engine_name", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
async def test_sigterm_with_sends_slower_than_the_shutdown_timeout_releases_them_as_unknown(
        tmp_path: Path, db_url: str, sink: SMTPSink) -> None:
    """The drain waits `shutdown_timeout`, then cancels: those sends may have reached the server, so
    they are released as `unknown`, due at once, duplicate possible; the next start sends them again."""
    count = 12
    sink.data_delay = 3.0  # each DATA answer takes longer than the whole shutdown timeout
    await prefill(db_url, count)
    folder = tmp_path / "first"
    folder.mkdir()
    port = free_port()
    first = await start_daemon(folder, port, env=smtp_env(db_url, sink, port, GATEWAY_DISPATCH__WORKERS=str(WORKERS),
                                                           GATEWAY_DISPATCH__SHUTDOWN_TIMEOUT="500ms"))
    try:
        await wait_for(lambda: len(sink.messages) >= 4, timeout=60)  # four connections, each inside DATA
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        code = await first.stop(signal.SIGTERM)
        took = loop.time() - signalled
    finally:
        await first.stop(signal.SIGKILL)
    assert code == 0 and took < 2.5  # it did not wait for the 3 s answers
    released = [r for r in await notification_rows(db_url) if r.status == "unknown"]
    assert 1 <= len(released) <= WORKERS
    assert all(r.duplicate_possible for r in released)
    assert any(line.get("action") == "outbox_released" for line in first.log_lines())

    sink.data_delay = 0.0
    second = await run_daemon(tmp_path / "second", db_url, sink)
    try:
        await wait_until_all_sent(db_url, count, timeout=60)
    finally:
        assert await second.stop() == 0
    ids = message_ids(sink)
    rows = await notification_rows(db_url)
    key = await installation_of(db_url)
    assert set(ids) == {expected_message_id(r.id, key) for r in rows}
    twice = {mid for mid, n in ids.items() if n > 1}
    assert len(twice) <= len(released)  # only what was in flight at the stop went twice...
    assert all(r.duplicate_possible for r in rows if expected_message_id(r.id, key) in twice)  # ...and says so
