"""The HTTP load generator, run as a child process so it does not share the gateway's GIL.

    python -m bench.loadgen '{"url": ..., "key": ..., "events": 2000, "clients": 50, "prefix": "r1"}'

Builds every request body first, then warms up: each client opens its keep-alive
connection with one untimed event of its own (the gateway compiles its templates and
SQL then, as a running daemon already has). Prints `ready`, waits for `go` on stdin,
then `clients` workers POST the events, each taking the next one as soon as its
previous answer is read. Prints
one JSON line: elapsed seconds, every latency in seconds, the status counts.
Only aiohttp is imported: the child's start-up stays short and its footprint small.

With `"mode": "open"` (the end-to-end scenario) it is an open-loop generator instead:
`rate` events a second for `seconds`, each POST started at its own time on the schedule
(start + n / rate), whether or not earlier answers have come back, so a slow gateway
meets the same arrivals a real upstream would send (no coordinated omission). Each event
notifies `notify` (default email only). After `warm` untimed events (sent one after the
other; the bench waits for their emails before saying `go`), it prints `ready`. The
result line holds, per event, the scheduled and actual send times (`time.time()`, to be
compared with the sink's acceptance times in another process), the answer's latency,
its status and the notification ids the answer gave.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

CONTENT_TYPE = "application/cloudevents+json"
PROGRESS_STEPS = 10


def opened_event(event_id: str, n: int) -> dict[str, Any]:
    """A valid structured protocol.opened with an email and a mobile phone (so two notifications)."""
    return {
        "specversion": "1.0", "id": event_id, "source": "urn:bench:crm", "type": "protocol.opened",
        "time": "2026-11-22T14:43:00Z",
        "data": {
            "subject": "Cobrança indevida na fatura de outubro",
            "channel": "phone",
            "consumer": {"name": "Maria Silva", "email": f"cliente{n}@example.com",
                         "phone": f"+551198{n % 10**7:07d}"},
        },
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    total, clients = spec["events"], spec["clients"]
    bodies = [json.dumps(opened_event(f"{spec['prefix']}-{n}", n)).encode() for n in range(total)]
    headers = {"Authorization": f"Bearer {spec['key']}", "Content-Type": CONTENT_TYPE}
    url = spec["url"].rstrip("/")
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    step = max(1, total // PROGRESS_STEPS)
    queue = iter(range(total))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in queue:
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/events", data=bodies[n], headers=headers) as response:
                    text = await response.read()
                    statuses[str(response.status)] += 1
                    if response.status != 202 and len(errors) < 5:
                        errors.append(f"{response.status}: {text[:200]!r}")
            except aiohttp.ClientError as exc:
                statuses["error"] += 1
                if len(errors) < 5:
                    errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)
            if len(latencies) % step == 0:
                print(f"[loadgen] {spec['label']}: {len(latencies)}/{total}", file=sys.stderr, flush=True)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def warm(n: int) -> None:
            body = json.dumps(opened_event(f"{spec['prefix']}-warm-{n}", total + n)).encode()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"warm-up refused: {response.status}")

        await asyncio.gather(*(warm(n) for n in range(clients)))
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, "statuses": dict(statuses), "errors": errors}


OPEN_IN_FLIGHT = 512  # most POSTs one open-loop generator keeps open; past it, sends fall behind schedule


def _notification_ids(body: bytes) -> list[int]:
    try:
        return [int(n["id"]) for n in json.loads(body)["notifications"]]
    except (ValueError, KeyError, TypeError):
        return []


async def run_open(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds, prefix = spec["rate"], spec["seconds"], spec["prefix"]
    total = max(1, round(rate * seconds))
    notify = spec.get("notify", ["email"])

    def body(event_id: str, n: int) -> bytes:
        envelope = opened_event(event_id, n)
        envelope["data"]["notify"] = notify
        return json.dumps(envelope).encode()

    bodies = [body(f"{prefix}-{n}", n) for n in range(total)]
    headers = {"Authorization": f"Bearer {spec['key']}", "Content-Type": CONTENT_TYPE}
    url = spec["url"].rstrip("/") + "/v1/events"
    events: list[list[Any]] = [[] for _ in range(total)]
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    limit = asyncio.Semaphore(OPEN_IN_FLIGHT)

    async def post(session: aiohttp.ClientSession, n: int, scheduled: float) -> None:
        async with limit:
            sent = time.time()
            started = time.perf_counter()
            status, ids = "error", []
            try:
                async with session.post(url, data=bodies[n], headers=headers) as response:
                    text = await response.read()
                    status = str(response.status)
                    ids = _notification_ids(text) if response.status == 202 else []
                    if response.status != 202 and len(errors) < 5:
                        errors.append(f"{response.status}: {text[:200]!r}")
            except aiohttp.ClientError as exc:
                if len(errors) < 5:
                    errors.append(repr(exc))
            statuses[status] += 1
            events[n] = [scheduled, sent, time.perf_counter() - started, status, ids]

    connector = aiohttp.TCPConnector(limit=OPEN_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(spec.get("warm", 0)):
            async with session.post(url, data=body(f"{prefix}-warm-{n}", total + n), headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"warm-up refused: {response.status}")
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        started_loop, started_wall = loop.time(), time.time()
        tasks = []
        for n in range(total):
            due = started_loop + n / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            tasks.append(asyncio.create_task(post(session, n, started_wall + n / rate)))
            if (n + 1) % max(1, total // PROGRESS_STEPS) == 0:
                print(f"[loadgen] {spec['label']}: {n + 1}/{total} posted", file=sys.stderr, flush=True)
        await asyncio.gather(*tasks)
        finished_wall = time.time()
    return {"started": started_wall, "finished": finished_wall, "events": events, "statuses": dict(statuses),
            "errors": errors}


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    result = asyncio.run(run_open(spec) if spec.get("mode") == "open" else run(spec))
    print(json.dumps(result), flush=True)
