"""A server the bench runs in a child process and talks to over its stdin and stdout.

The SMTP sink (bench/sink.py) and the fake Twilio API (bench/twilio_fake.py) each run in
an interpreter of their own, so their CPU is not under the GIL of the code being
measured. The child prints `port N` once it listens, then answers one line per command
read on stdin; end of input stops it.

    class SinkProcess(ChildServer):
        module = "bench.sink"
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for the child to import its server and listen
STOP_TIMEOUT = 10.0  # seconds for the child to exit once its stdin closes
ANSWER_LIMIT = 2**26  # bytes: a `dump` answer holds one record per message (or a generator's result)
GENERATOR_TIMEOUT = 600.0  # seconds for one load-generator round


class ChildServer:
    module = ""  # the `python -m` module that serves
    host = HOST

    def __init__(self, *args: str) -> None:
        self.port = 0
        self._args = args
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one command at a time: answers come back in order

    async def __aenter__(self) -> ChildServer:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, *self._args, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=ANSWER_LIMIT,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT)
        if not line.startswith(b"port "):
            await self._proc.wait()
            raise RuntimeError(f"{self.module} did not start (exit {self._proc.returncode})")
        self.port = int(line.split()[1])
        return self

    async def ask(self, command: str) -> str:
        """Send one command, return its answer: the line after the echoed command name."""
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        async with self._lock:
            self._proc.stdin.write(command.encode() + b"\n")
            await self._proc.stdin.drain()
            line = (await self._proc.stdout.readline()).decode()
        name, _, rest = line.rstrip("\n").partition(" ")
        if name != command:
            raise RuntimeError(f"{self.module} answered {line[:200]!r} to {command!r}")
        return rest

    async def count(self) -> tuple[int, int]:
        """Messages and bytes accepted so far."""
        messages, size = (await self.ask("count")).split()
        return int(messages), int(size)

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


async def answer_commands(commands: dict[str, Callable[[], str]]) -> None:
    """In the child, once listening: answer each command read on stdin until stdin closes.

    `commands` maps a command name to a function returning the answer's text.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=ANSWER_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        name = line.decode().strip()
        answer = commands.get(name)
        if answer is not None:
            print(f"{name} {answer()}", flush=True)
        else:
            print(f"unknown {name}", flush=True)


async def run_generator(spec: dict[str, Any], *, before_go: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Run `bench.loadgen` with `spec`: it prints `ready`, waits for `go` (sent once
    `before_go` returns), then prints its result as one JSON line and exits. The result also
    holds `cpu_at_go`: this process's CPU time when `go` was sent, after the warm-up, whose first
    renders and compiles a running daemon has behind it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", json.dumps(spec), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=ANSWER_LIMIT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = await asyncio.wait_for(proc.stdout.readline(), GENERATOR_TIMEOUT)
        if ready.strip() != b"ready":
            raise RuntimeError(f"load generator did not start: {ready[:200]!r}")
        if before_go is not None:
            await before_go()
        cpu_at_go = time.process_time()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), GENERATOR_TIMEOUT)
        await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"load generator failed (exit {proc.returncode})")
    return {**json.loads(line), "cpu_at_go": cpu_at_go}
