"""Watching the daemon: `protocol-gateway run` started on a filled store and walked through its
phases (start, start-up sweeps, their messages, idle, drain), then stopped; the figures and checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench import standalone
from bench.memory import ACTIVE, OPERATIONS, PHASE_TIMEOUT, POLL_EVERY, PROGRESS_EVERY, START_TIMEOUT, STOP_TIMEOUT, UTC
from bench.memory.fill import backlog_ids
from bench.memory.probes import DaemonLog, PostgresProbe, Probe, Sampler, SQLiteProbe
from bench.progress import say
from bench.settings import REPLY_TO, SENDER
from bench.sink import SinkProcess


@dataclass(frozen=True)
class Limits:
    """Seconds each phase may take before the run goes on without it (and says so)."""

    sweeps: float = PHASE_TIMEOUT
    settle: float = PHASE_TIMEOUT
    drain: float = PHASE_TIMEOUT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_command() -> list[str]:
    """`protocol-gateway` as installed beside this interpreter, else the same module."""
    script = Path(sys.executable).with_name("protocol-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def write_settings(folder: Path, url: str, port: int, sink: SinkProcess) -> Path:
    """The shipped defaults but for where things go: the database, SMTP to the sink, SMS to a file,
    and one operations address, so that the operations sweeps have someone to write to."""
    q = json.dumps  # a JSON string is a TOML basic string
    path = folder / "settings.toml"
    path.write_text(f"""
[database]
url = {q(url)}
[http]
port = {port}
[email]
transport = "smtp"
from = {q(SENDER)}
reply_to = {q(REPLY_TO)}
[email.smtp]
host = {q(sink.host)}
port = {sink.port}
starttls = false
[sms]
transport = "file"
file = {q(str(folder / "sms.jsonl"))}
[operations]
emails = [{q(OPERATIONS)}]
""", encoding="utf-8")
    return path


async def wait_until(check: Callable[[], Awaitable[bool]], *, what: str, process: asyncio.subprocess.Process,
                     log: DaemonLog, timeout: float,
                     progress: Callable[[], Awaitable[str]] | None = None) -> tuple[float, bool]:
    """Poll `check` until it holds or `timeout` passes: (seconds taken, whether it held).
    The daemon dying ends the run."""
    started = time.monotonic()
    said = started
    while not await check():
        if process.returncode is not None:
            raise RuntimeError(f"the daemon exited {process.returncode} during {what}: {log.tail()}")
        now = time.monotonic()
        if now - started > timeout:
            say(f"  {what}: not done after {timeout:.0f} s; going on")
            return now - started, False
        if progress is not None and now - said >= PROGRESS_EVERY:
            said = now
            say(f"  {what}: {await progress()}")
        await asyncio.sleep(POLL_EVERY)
    return time.monotonic() - started, True


async def healthy(port: int) -> bool:
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            return r.status == 200
    return False


async def stop_daemon(process: asyncio.subprocess.Process) -> int | None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
    return process.returncode


async def observe(kind: str, url: str, folder: Path, *, n: int, queued: int, idle: float,
                  limits: Limits) -> dict[str, Any]:
    """Run the daemon through its phases on a filled database; the figures and checks."""
    probe: Probe = SQLiteProbe(url) if kind == "sqlite" else await PostgresProbe.open(url)
    out: dict[str, Any] = {"database": kind, "protocols": n, "queued": queued}
    try:
        async with SinkProcess() as sink:
            port = free_port()
            settings = write_settings(folder, url, port, sink)
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
            stderr_path = folder / "daemon.stderr"
            log = DaemonLog(stderr_path)
            with open(stderr_path, "wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *daemon_command(), "run", "--config", str(settings), cwd=folder, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
            sampler = Sampler(process.pid)
            sampling = asyncio.create_task(sampler.run())
            phases = Phases(out, probe, sink, sampler, log, process, limits)
            try:
                await phases.start(port)
                await phases.sweeps()
                await phases.settle()
                await phases.rest(idle)
                await phases.drain(backlog_ids(n, queued))
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
                out["exit_code"] = await stop_daemon(process)
                out["sink_total"] = (await sink.count())[0]
            log.read()
            out.update(errors_logged=log.errors, sweeps=log.sweeps, schedules=log.schedules or [],
                       emails_sent_total=await probe.emails_sent(), rss_source=sampler.source,
                       phases=sampler.phases(), samples=sampler.thinned())
    finally:
        await probe.close()
    out["checks"] = checks(out)
    return out


class Phases:
    """The daemon's life in the order the bench walks it; each step writes its figures into `out`."""

    def __init__(self, out: dict[str, Any], probe: Probe, sink: SinkProcess, sampler: Sampler, log: DaemonLog,
                 process: asyncio.subprocess.Process, limits: Limits) -> None:
        self.out, self.probe, self.sink, self.sampler, self.log = out, probe, sink, sampler, log
        self.process, self.limits = process, limits
        self.label = out["database"]

    async def _wait(self, check: Callable[[], Awaitable[bool]], what: str, timeout: float,
                    progress: Callable[[], Awaitable[str]] | None = None) -> tuple[float, bool]:
        return await wait_until(check, what=what, process=self.process, log=self.log, timeout=timeout,
                                progress=progress)

    def _rss(self) -> str:
        return f"RSS {standalone.mib(self.sampler.sample())} MiB"

    async def start(self, port: int) -> None:
        say(f"{self.label}: starting the daemon (pid {self.process.pid}); RSS sampled with {self.sampler.source}")
        seconds, up = await self._wait(lambda: healthy(port), "start", START_TIMEOUT)
        if not up:
            raise RuntimeError(f"the daemon did not answer /healthz within {START_TIMEOUT:.0f} s: {self.log.tail()}")
        self.out.update(start_seconds=seconds, rss_at_healthz=self.sampler.sample())
        say(f"{self.label}: /healthz after {seconds:.1f} s, RSS {standalone.mib(self.out['rss_at_healthz'])} MiB")

    async def sweeps(self) -> None:
        """Every schedule runs once at start-up (scheduler_started names them); wait for each one's log line."""
        self.sampler.enter("start-up sweeps")

        async def finished() -> bool:
            return self.log.sweeps_finished()

        async def progress() -> str:
            return f"{len(self.log.sweeps)}/{len(self.log.schedules or [])} schedules done, {self._rss()}"

        seconds, done = await self._wait(finished, "start-up sweeps", self.limits.sweeps, progress)
        self.out.update(sweeps_seconds=seconds, sweeps_finished=done)
        peak = max(self.sampler.in_phase("start-up sweeps"), default=None)
        say(f"{self.label}: start-up sweeps done in {seconds:.1f} s, peak {standalone.mib(peak)} MiB")

    async def settle(self) -> None:
        """The sweeps' own messages go out (those not held for the consumer's quiet hours)."""
        self.sampler.enter("sweeps' messages")

        async def nothing_due() -> bool:
            return await self.probe.due(datetime.now(UTC)) == 0

        async def progress() -> str:
            return f"{await self.probe.due(datetime.now(UTC)):,} due, {self._rss()}"

        seconds, done = await self._wait(nothing_due, "the sweeps' messages", self.limits.settle, progress)
        self.out.update(settle_seconds=seconds, settled=done, due_at_idle=await self.probe.due(datetime.now(UTC)))

    async def rest(self, idle: float) -> None:
        self.sampler.enter("idle")
        await asyncio.sleep(idle)
        resting = self.sampler.in_phase("idle")
        self.out.update(rss_idle=statistics.median(resting) if resting else self.sampler.sample(),
                        hwm_before_drain=self.sampler.hwm())
        say(f"{self.label}: idle RSS {standalone.mib(self.out['rss_idle'])} MiB; "
            f"peak so far (VmHWM) {standalone.mib(self.out['hwm_before_drain'])} MiB")

    async def drain(self, backlog: tuple[int, int]) -> None:
        """Reset the peak, make the backlog due, wait until none of it is active (or the limit)."""
        lo, hi = backlog
        queued = self.out["queued"]
        self.out["peak_reset"] = self.sampler.reset_peak()
        self.sampler.enter("drain")
        sink_before, bytes_before = await self.sink.count()
        released_at = datetime.now(UTC)
        self.out["released"] = await self.probe.release(lo, hi, released_at)
        say(f"{self.label}: drain: {self.out['released']:,} emails made due")

        async def drained() -> bool:
            statuses = await self.probe.statuses(lo, hi)
            return not any(statuses.get(s, 0) for s in ACTIVE)

        async def progress() -> str:
            got, _ = await self.sink.count()
            return f"{got - sink_before:,}/{queued:,} at the sink, {self._rss()}"

        self.out["drain_wait_seconds"], self.out["drained"] = await self._wait(drained, "drain", self.limits.drain,
                                                                               progress)
        self.sampler.sample()
        sink_after, bytes_after = await self.sink.count()
        self.out.update(hwm_drain=self.sampler.hwm(), rss_after_drain=self.sampler.sample(),
                        sink_during_drain=sink_after - sink_before,
                        bytes_per_message=(bytes_after - bytes_before) / max(1, sink_after - sink_before),
                        backlog=await self.probe.statuses(lo, hi))
        await self._drain_figures(lo, hi, released_at)
        self.sampler.enter("stop")

    async def _drain_figures(self, lo: int, hi: int, released_at: datetime) -> None:
        out, queued = self.out, self.out["queued"]
        first, last = await self.probe.sent_span(lo, hi)
        sent = out["backlog"].get("sent", 0)
        # Finished: to the last send recorded. Cut short: to now, and the rest projected at that rate.
        end = last if out["drained"] else datetime.now(UTC)
        out["drain_seconds"] = (end - released_at).total_seconds() if end is not None else None
        out["first_sent_after"] = (first - released_at).total_seconds() if first else None
        out["rate"] = sent / out["drain_seconds"] if out["drain_seconds"] else None
        out["projected_drain_seconds"] = queued / out["rate"] if out["rate"] else None
        out["due_at_end"] = await self.probe.due(datetime.now(UTC))
        samples = self.sampler.in_phase("drain")
        out["peak_drain"] = out["hwm_drain"] if out["peak_reset"] else max(samples, default=None)
        out["peak"] = max(v for v in (out["hwm_before_drain"], out["peak_drain"],
                                      *(b for _, b, _ in self.sampler.samples)) if v is not None)
        say(f"{self.label}: {'drained' if out['drained'] else 'cut short after sending'} {sent:,} in "
            f"{out['drain_seconds'] or 0:.1f} s ({out['rate'] or 0:,.1f}/s); "
            f"peak during the drain {standalone.mib(out['peak_drain'])} MiB")


def start_up_sweeps(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each schedule's first logged run: the one at start-up."""
    first: dict[str, dict[str, Any]] = {}
    for run in out.get("sweeps", []):
        first.setdefault(run.get("schedule", "?"), run)
    return list(first.values())


def checks(out: dict[str, Any]) -> dict[str, bool]:
    failed = [s for s in out.get("sweeps", []) if s["action"] == "sweep_failed"]
    return {
        "every start-up sweep finished, none failed": bool(out.get("schedules")) and not failed
        and set(out.get("schedules", [])) <= {s.get("schedule") for s in out.get("sweeps", [])},
        "the sweeps' messages went out before the idle phase": bool(out.get("settled")),
        "every queued email recorded as sent": out.get("backlog", {}).get("sent") == out["queued"],
        "the sink got every email recorded as sent": out.get("sink_total") == out.get("emails_sent_total"),
        "nothing due left in the outbox": out.get("due_at_end") == 0,
        "no error logged": out.get("errors_logged") == 0,
        "the daemon stopped cleanly on SIGTERM": out.get("exit_code") == 0,
    }
