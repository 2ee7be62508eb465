"""`python -m bench.dispatch_cost`: the CPU an SMS costs this process, the gateway's part and the SDK's.

    python -m bench.dispatch_cost                  # 2,000 SMS a round, 5 rounds, SQLite
    python -m bench.dispatch_cost --messages 5000 --rounds 7
    python -m bench.dispatch_cost --smoke          # tiny sizes: proves it runs

The SMS drain (`python -m bench --scenarios sms`) compares rates, which move with everything
else on a shared machine. This bench gives the same drain in CPU time of this process
(`time.process_time`: every thread, so the SQLite writer's turns too), per message, for three
variants run in turn each round on the same outbox (a fresh copy each time) and the same fake
Twilio (bench/twilio_fake.py, a child process):

- the raw Twilio SDK, as the sms scenario's baseline sends (`create_async`, 8 in flight);
- the gateway's dispatcher with the real `TwilioTransport`, as the sms scenario's gateway;
- the gateway's dispatcher with a provider that accepts at once (`bench.ingest.NullTransport`):
  what the gateway adds to a send, claim, record, metrics and log included.

Where the drain is bound by this process's CPU (one core: the event loop and the SQLite writer
share the GIL) and the gateway's part and the SDK's only add up, its rate can reach at most
SDK ÷ (SDK + gateway's part) of the raw SDK's: the report gives that bound beside the ratio of
the CPU measured with Twilio.

A second table splits each variant's CPU by thread: the event loop's (the main thread) and the
other threads' (SQLite's writer and readers, each its own aiosqlite thread), with the threads'
voluntary context switches an SMS. They do not add up across variants: the writer's turns cost
more CPU while the loop is busy beside them, as each step of a statement lets go of the GIL and
waits to take it back (bench/README.md, fifteenth round), and the switches count those waits.
Tables to stdout and to bench/results/dispatch-cost-<date>-<time>.md, every round in the .json.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import twilio.rest.api  # noqa: F401  (the SDK imports it at its first message: not inside a timed round)

from bench import standalone
from bench.databases import SQLiteStore
from bench.drain import prefill
from bench.ingest import NullTransport
from bench.progress import say
from bench.settings import bench_settings
from bench.sms import FROM, queued, raw_round
from bench.twilio_fake import TwilioFakeProcess
from gateway.app import build_runtime
from gateway.config import DispatchSettings

VARIANTS = {
    "raw": "raw Twilio SDK (create_async)",
    "twilio": "gateway: dispatcher + TwilioTransport",
    "null": "gateway: dispatcher + a provider that accepts at once",
}


Threads = dict[tuple[int, int], tuple[bool, float, int | None]]


def _threads() -> Threads:
    """Each live thread of this process, by its ids (the kernel's and Python's: either alone can be
    reused once a thread ends): whether it is the main one (the event loop's), its CPU seconds so
    far, and its voluntary context switches so far (None where /proc does not say)."""
    found = {}
    for thread in threading.enumerate():
        if thread.ident is None or thread.native_id is None:
            continue
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # it ended meanwhile
            continue
        found[thread.native_id, thread.ident] = (thread is threading.main_thread(), cpu, _switches(thread.native_id))
    return found


def _switches(native_id: int) -> int | None:
    try:
        with open(f"/proc/self/task/{native_id}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _split(before: Threads, after: Threads, messages: int) -> tuple[float, float, float]:
    """Between two `_threads()`: CPU µs an SMS of the loop and of the other threads alive at the end
    (one started meanwhile counts from zero; one that ended meanwhile is not counted, and none of
    the gateway's does before `after` is read), and their voluntary context switches an SMS."""
    loop = others = switches = 0.0
    for key, (main, cpu, count) in after.items():
        _, cpu0, count0 = before.get(key, (main, 0.0, 0))
        if main:
            loop += cpu - cpu0
        else:
            others += cpu - cpu0
        if count is not None and count0 is not None:
            switches += count - count0
    return loop / messages * 1e6, others / messages * 1e6, switches / messages


async def _gateway(store: SQLiteStore, template: str, folder: Path, fake: TwilioFakeProcess, *, workers: int,
                   null: bool) -> tuple[float, int, Threads, Threads]:
    """CPU seconds of one drain (only `run_until_idle`, not building the runtime), the rows sent, and
    the threads before and after it (`_threads`: read before the runtime's threads end)."""
    url = await store.clone(template)
    sms = {"transport": "twilio", "twilio": {"account_sid": fake.account_sid, "auth_token": fake.auth_token,
                                             "from": FROM, "api_base_url": fake.base_url}}
    runtime = build_runtime(bench_settings(folder, url, sms=sms, dispatch={"workers": workers}),
                            transports={c: NullTransport() for c in ("email", "sms", "whatsapp")} if null else None)
    try:
        threads = _threads()
        started = time.process_time()
        await runtime.dispatcher.run_until_idle()
        cpu = time.process_time() - started
        threads_after = _threads()
        sent = await runtime.db.query(_sent)
    finally:
        await runtime.aclose()
        await store.drop(url)
    return cpu, sent, threads, threads_after


def _sent(session: Any) -> int:
    from sqlalchemy import func, select

    from gateway.store.models import Notification
    return int(session.scalar(select(func.count()).where(Notification.status == "sent")))


async def measure(messages: int, rounds: int, folder: Path) -> dict[str, Any]:
    workers = DispatchSettings().workers
    store = SQLiteStore(folder)
    figures: dict[str, list[float]] = {name: [] for name in VARIANTS}
    split: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    try:
        async with TwilioFakeProcess() as fake:
            say(f"filling an outbox with {messages} SMS (not timed)")
            template = await store.template("sms", fill=lambda url: prefill(url, folder, messages, channel="sms"))
            outbox = await queued(template, "sms")
            for r in range(1, rounds + 1):
                for name in standalone.in_turn(VARIANTS, r):
                    if name == "raw":
                        threads = _threads()
                        started = time.process_time()
                        row = await raw_round(fake, outbox, workers=workers, database=store.name)
                        cpu, sent = time.process_time() - started, row["fake_received"]
                        threads_after = _threads()
                    else:
                        cpu, sent, threads, threads_after = await _gateway(store, template, folder, fake,
                                                                           workers=workers, null=name == "null")
                    if sent != messages:
                        raise SystemExit(f"{VARIANTS[name]}: {sent} of {messages} SMS sent")
                    figures[name].append(cpu / messages * 1e6)
                    split[name].append(_split(threads, threads_after, messages))
                say(f"round {r}/{rounds}: " + ", ".join(f"{n} {figures[n][-1]:.0f} µs" for n in VARIANTS))
    finally:
        await store.close()
    out: dict[str, Any] = standalone.cpu_summary(figures)
    out["workers"] = workers
    out["threads"] = {name: {"rounds": [[round(v, 2) for v in r] for r in rounds_],
                             "median_loop_us": round(statistics.median(r[0] for r in rounds_), 1),
                             "median_others_us": round(statistics.median(r[1] for r in rounds_), 1),
                             "median_switches": round(statistics.median(r[2] for r in rounds_), 3)}
                      for name, rounds_ in split.items()}
    return out


def markdown(run: dict[str, Any]) -> str:
    f, a = run["figures"], run["arguments"]
    raw, twilio, null = (f[n]["median_us"] for n in ("raw", "twilio", "null"))
    lines = [f"# The CPU an SMS costs {run['started_at']}", "", f"Command: `{run['command']}`", ""]
    lines += standalone.machine_lines(run["machine"]) + [""]
    lines += [f"## CPU µs of this process per SMS, SQLite ({a['messages']} a round, {a['rounds']} rounds, "
              f"{f['workers']} in flight)", ""]
    lines += standalone.cpu_table(f, VARIANTS)
    lines += ["", f"- raw SDK ÷ gateway with Twilio, in CPU: {raw / twilio:.0%}",
              f"- if the drain is bound by this process's CPU and the parts add up, the best its rate can "
              f"reach while the gateway's part costs {null:.0f} µs: SDK ÷ (SDK + gateway's part) = "
              f"{raw / (raw + null):.0%} of the raw SDK's", ""]
    lines += ["## The same by thread (medians)", "",
              "| what | event loop, CPU µs an SMS | other threads (SQLite's), CPU µs an SMS | "
              "voluntary context switches an SMS |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {t['median_loop_us']:.0f} | {t['median_others_us']:.0f} | {t['median_switches']:.2f} |"
              for name, label in VARIANTS.items() for t in [f["threads"][name]]]
    lines += [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = standalone.sized_arguments(argv, prog="bench.dispatch_cost", doc=__doc__, size="messages", default=2000,
                                      what="SMS", rounds=5, order="in turn", smoke=(30, 1))
    run = standalone.in_temporary_folder(lambda folder: measure(args.messages, args.rounds, folder))
    return standalone.measured("bench.dispatch_cost", argv, args, run, markdown, "dispatch-cost-")


if __name__ == "__main__":
    sys.exit(main())
