"""The HTTP load generator, run as a child process so it does not share the gateway's GIL.

    python -m bench.loadgen '{"url": ..., "key": ..., "events": 2000, "clients": 50, "prefix": "r1"}'

Builds every request body first, then warms up: each client opens its keep-alive
connection with one untimed event of its own (the gateway compiles its templates and
SQL then, as a running daemon already has). Prints `ready`, waits for `go` on stdin,
then `clients` workers POST the events, each taking the next one as soon as its
previous answer is read. Prints
one JSON line: elapsed seconds, every latency in seconds, the status counts.
Only aiohttp is imported: the child's start-up stays short and its footprint small.
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


if __name__ == "__main__":
    result = asyncio.run(run(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
