"""`python -m bench.peer`: the gateway and a peer, Apprise, sending the same emails to the same sink.

    python -m bench.peer                       # 1,000 emails each, 5 through Apprise's throttle, 3 rounds
    python -m bench.peer --emails 5000 --rounds 1
    python -m bench.peer --smoke               # 20 emails, 2 throttled, 1 round: proves it runs

Target (issue 20): the gateway sends at least 30 times as fast as Apprise with its throttle off; Apprise
as installed, with its 5.5 s throttle, is reported beside it.

Apprise (installed by `make bench` only, never a dependency of the gateway) is what many
projects reach for to send a notification. Read in its source (apprise/plugins/email/,
apprise/url.py, apprise/plugins/base.py) and confirmed by the run:

- `NotifyEmail.send()` opens one `AppriseSMTPController` per call: `smtplib.SMTP` connect,
  EHLO, STARTTLS and login when asked, `sendmail`, QUIT. One connection per message.
- It builds `ssl.create_default_context()` for every connection, TLS or not; loading the
  system's CA store is the bulk of its time per message against a local server (the report
  gives that call's cost on this machine).
- The throttle is `request_rate_per_sec`, which despite its name is seconds between two sends
  of the same plugin object: `NotifyBase` sets 5.5 and the email plugin keeps it;
  `URLBase.throttle()` sleeps the rest of 5.5 s since the last send. A new object's first
  send never waits.
- `mailto://127.0.0.1:PORT?from=...&to=...` talks to that port in plain SMTP: `mailto` (not
  `mailtos`, which means STARTTLS on 587 or TLS on 465) defaults to mode `insecure`, no TLS
  at all (the bench also says `mode=insecure`), and a URL without user and password means
  no login.

The emails are the gateway's own confirmation emails, queued through the service
(`bench.drain.prefill`) once, untimed. The gateway drains them with its dispatcher and SMTP
pool (`bench.drain.gateway_round`: defaults, 4 connections and 8 workers) in this process;
Apprise sends the same subject and HTML (it derives the text part itself) through
`Apprise.notify()`, one call per email, in a child process of its own, so that neither it
nor the sink shares a GIL with anyone. Apprise variants:

- throttle off, one `Apprise` object per email: a mailto URL names its recipients, so an
  application mailing each consumer builds one per address (the throttle, set to 0 anyway,
  would never wait on a fresh object);
- throttle off, one object for every email (all to the first recipient): the same without
  building objects, to show where the time goes;
- as installed, one object for `--throttled-emails` emails: the 5.5 s throttle at work.

Each round runs the variants in turn (the order rotates); the report gives medians. Progress
goes to stderr; the table to stdout and bench/results/peer-<date>-<time>.md, the figures to the
.json beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from queue import Empty
from typing import Any
from urllib.parse import quote

from bench import standalone
from bench.progress import say
from bench.settings import REPLY_TO, SENDER
from bench.sink import SinkProcess

# The gateway side (bench.drain, gateway.*) is imported where it is used: the Apprise child is
# spawned, imports this module, and should carry nothing but Apprise.

TARGET = 30.0  # the gateway's rate ÷ Apprise's, throttle off (issue 6 asked 20, issue 20 asks 30)
SMOKE = {"emails": 20, "throttled_emails": 2, "rounds": 1}
CHILD_TIMEOUT = 3600.0  # seconds for one Apprise run
PER_EMAIL, ONE_OBJECT, AS_INSTALLED = "per-email", "one-object", "as-installed"
LABELS = {
    "gateway": "gateway: outbox drain, {connections} SMTP connections, {workers} workers",
    PER_EMAIL: "Apprise, throttle off, one Apprise object per email",
    ONE_OBJECT: "Apprise, throttle off, one Apprise object for every email",
    AS_INSTALLED: "Apprise as installed (throttle on), one Apprise object",
}


def mailto(host: str, port: int, to: str) -> str:
    """Plain SMTP to host:port, no login, the gateway's sender and reply-to."""
    return (f"mailto://{host}:{port}?from={quote(SENDER)}&to={quote(to)}&reply={quote(REPLY_TO)}"
            "&mode=insecure")


def _apprise_child(spec: dict[str, Any], queue: Any) -> None:
    """In a process of its own: send `spec["emails"]` with Apprise.notify(), one call each; timings back."""
    import ssl

    import apprise

    started = time.perf_counter()
    ssl.create_default_context()  # what each of its sends builds: measured alone
    ssl_seconds = time.perf_counter() - started

    def build(to: str) -> Any:
        obj = apprise.Apprise()
        if not obj.add(mailto(spec["host"], spec["port"], to)):
            raise RuntimeError("Apprise refused the mailto URL")
        if spec["throttle"] is not None:
            for plugin in obj:
                plugin.request_rate_per_sec = spec["throttle"]
        return obj

    emails = spec["emails"]
    shared = build(emails[0]["to"]) if spec["mode"] != PER_EMAIL else None
    plugin = next(iter(shared)) if shared is not None else next(iter(build(emails[0]["to"])))
    ends, failures = [], 0
    begun = time.perf_counter()
    for email in emails:
        obj = shared if shared is not None else build(email["to"])
        html = email["html"] is not None
        ok = obj.notify(body=email["html"] if html else email["text"], title=email["subject"],
                        body_format=apprise.NotifyFormat.HTML if html else apprise.NotifyFormat.TEXT)
        failures += 0 if ok else 1
        ends.append(time.perf_counter() - begun)
    elapsed = time.perf_counter() - begun
    queue.put({
        "elapsed_s": elapsed, "ends": ends, "failures": failures, "ssl_context_s": ssl_seconds,
        "plugin": f"{type(plugin).__module__}.{type(plugin).__name__}",
        "default_rate_attr": type(plugin).request_rate_per_sec, "rate_attr": plugin.request_rate_per_sec,
        "secure_mode": plugin.secure_mode, "port": plugin.port, "smtp_host": plugin.smtp_host,
    })


def _child_result(child: Any, queue: Any) -> dict[str, Any]:
    """The child's figures; a child that died or hung ends the run instead of waiting forever."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=0.5)
        except Empty:
            if not child.is_alive():
                raise RuntimeError(f"the Apprise child exited {child.exitcode} without figures") from None
    raise RuntimeError(f"the Apprise child sent nothing in {CHILD_TIMEOUT:.0f} s")


async def apprise_round(sink: SinkProcess, emails: list[dict[str, Any]], mode: str, label: str) -> dict[str, Any]:
    from bench.drain import sink_progress

    spec = {"host": sink.host, "port": sink.port, "emails": emails, "mode": mode,
            "throttle": None if mode == AS_INSTALLED else 0}
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_apprise_child, args=(spec, queue), daemon=True)
    before, before_bytes = await sink.count()
    async with sink_progress(sink, label, len(emails)):
        child.start()
        try:
            result = await asyncio.to_thread(_child_result, child, queue)
        finally:
            await asyncio.to_thread(child.join, 10)
            if child.is_alive():
                child.kill()
    after, after_bytes = await sink.count()
    received = after - before
    if mode != AS_INSTALLED:
        del result["ends"]  # each send's end time matters only to show the throttle
    return {"what": mode, "count": len(emails), "rate": len(emails) / result["elapsed_s"],
            "sink_received": received, "bytes_per_message": (after_bytes - before_bytes) / received if received else 0,
            **result}


async def gateway_once(store: Any, template: str, folder: Path, sink: SinkProcess, *, count: int,
                       label: str) -> dict[str, Any]:
    from bench.drain import gateway_round
    from gateway.config import DispatchSettings, SMTPSettings

    connections, workers = SMTPSettings().pool_size, DispatchSettings().workers
    row = await gateway_round(store, template, folder, sink, connections=connections, count=count, workers=workers,
                              label=label)
    return {**row, "what": "gateway", "connections": connections, "workers": workers}


def as_emails(messages: list[Any]) -> list[dict[str, Any]]:
    return [{"to": m.to, "subject": m.subject, "text": m.text, "html": m.html} for m in messages]


async def measure(folder: Path, *, emails: int, throttled: int, rounds: int) -> tuple[list[dict[str, Any]], int]:
    """Every variant's figures, and the sink's port (to check Apprise went there)."""
    from bench.databases import SQLiteStore
    from bench.drain import prefill, rendered_messages

    store = SQLiteStore(folder)
    say(f"peer: queueing {emails} confirmation emails through the service (not timed)")
    template = await store.template("peer", fill=lambda url: prefill(url, folder, emails))
    messages = as_emails(await rendered_messages(template))
    results: list[dict[str, Any]] = []
    variants = ["gateway", PER_EMAIL, ONE_OBJECT]
    async with SinkProcess() as sink:
        for r in range(1, rounds + 1):
            turn = (r - 1) % len(variants)
            for what in variants[turn:] + variants[:turn]:
                label = f"peer-r{r}-{what}"
                say(f"{label}: {len(messages)} emails")
                if what == "gateway":
                    row = await gateway_once(store, template, folder, sink, count=len(messages), label=label)
                else:
                    row = await apprise_round(sink, messages, what, label)
                row["round"] = r
                say(f"{label}: {row['rate']:.1f} emails/s ({row['elapsed_s']:.2f} s)")
                results.append(row)
        label = "peer-as-installed"
        say(f"{label}: {throttled} emails through one Apprise object, throttle as installed "
            f"(about {max(0, throttled - 1) * 5.5:.0f} s)")
        row = await apprise_round(sink, messages[:throttled], AS_INSTALLED, label)
        row["round"] = 1
        say(f"{label}: {row['elapsed_s'] / throttled:.2f} s per email")
        results.append(row)
        return results, sink.port


# The report


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for what in ("gateway", PER_EMAIL, ONE_OBJECT, AS_INSTALLED):
        rows = [r for r in results if r["what"] == what]
        if not rows:
            continue
        entry: dict[str, Any] = {"what": what, "count": rows[0]["count"], "rounds": len(rows),
                                 "rate": statistics.median(r["rate"] for r in rows),
                                 "rates": [round(r["rate"], 2) for r in rows],
                                 "bytes_per_message": statistics.median(r["bytes_per_message"] for r in rows)}
        if what == AS_INSTALLED:
            ends = rows[0]["ends"]
            gaps = [b - a for a, b in zip(ends, ends[1:])]
            entry["gaps_s"] = gaps
            entry["seconds_per_email"] = rows[0]["elapsed_s"] / rows[0]["count"]
        summary.append(entry)
    return summary


def verdicts(summary: list[dict[str, Any]]) -> dict[str, Any]:
    by = {e["what"]: e for e in summary}
    gateway = by["gateway"]["rate"]
    off = max((by[w] for w in (PER_EMAIL, ONE_OBJECT) if w in by), key=lambda e: e["rate"])
    installed = by.get(AS_INSTALLED)
    return {"ratio_throttle_off": gateway / off["rate"], "against": off["what"],
            "ratio_as_installed": gateway / installed["rate"] if installed else None,
            "met": gateway / off["rate"] >= TARGET}


def checks(run: dict[str, Any]) -> dict[str, bool]:
    results = run["results"]
    installed = next((r for r in results if r["what"] == AS_INSTALLED), None)
    # Each send's I/O starts at least `request_rate_per_sec` after the previous one's: n sends take (n-1) of them.
    throttled = (installed is not None and installed["rate_attr"] > 0
                 and installed["elapsed_s"] >= (installed["count"] - 1) * installed["rate_attr"])
    return {
        "the sink received every email of every run": all(r["sink_received"] == r["count"] for r in results),
        "the gateway recorded every email as sent": all(r.get("recorded_sent") == r["count"]
                                                        for r in results if r["what"] == "gateway"),
        "every Apprise.notify() call succeeded": all(r.get("failures") == 0 for r in results if r["what"] != "gateway"),
        "Apprise talked plain SMTP to the sink (mode insecure, the sink's port)": all(
            r.get("secure_mode") == "insecure" and r.get("port") == run["sink_port"]
            for r in results if r["what"] != "gateway"),
        "Apprise as installed waited its throttle between sends": throttled,
    }


def markdown(run: dict[str, Any]) -> str:
    a, summary, v = run["arguments"], run["summary"], run["verdict"]
    gateway_row = next(r for r in run["results"] if r["what"] == "gateway")
    child = next(r for r in run["results"] if r["what"] != "gateway")
    rounds = f"median of {a['rounds']} rounds" if a["rounds"] > 1 else "1 round"
    lines = [f"# Peer: the gateway and Apprise sending the same emails ({a['emails']:,} each, {rounds})", "",
             f"Command: `{run['command']}`", ""]
    if a.get("note"):
        lines += [f"Note: {a['note']}", ""]
    lines += standalone.machine_lines(run["machine"], extra_libraries={"apprise": run["apprise"]})
    lines += [
        "- processes: the gateway in this bench's process and loop; Apprise in a child process of its own "
        "(spawned, sequential `Apprise.notify()` calls, timed inside the child, after its imports); the SMTP "
        "sink (bench/sink.py) in another",
        f"- Apprise's email plugin `{child['plugin']}`: `request_rate_per_sec` {child['default_rate_attr']} "
        "(seconds between two sends of one plugin object), one SMTP connection per message; "
        f"URL `mailto://127.0.0.1:PORT?from=…&to=…&reply=…&mode=insecure` gave mode `{child['secure_mode']}`, "
        "no login",
        f"- `ssl.create_default_context()`, which Apprise builds for every message even without TLS, takes "
        f"{child['ssl_context_s'] * 1000:.1f} ms here",
        "- the emails: the gateway's rendered `protocol_opened` confirmations; Apprise is given the same subject "
        "and HTML and makes its own text part",
        "",
        "| what | emails | emails/s (median) | ms per email | bytes/message | emails/s per round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for e in summary:
        label = LABELS[e["what"]].format(connections=gateway_row["connections"], workers=gateway_row["workers"])
        lines.append(f"| {label} | {e['count']:,} | {e['rate']:,.2f} | {1000 / e['rate']:,.1f} "
                     f"| {e['bytes_per_message']:,.0f} | {', '.join(f'{x:,.1f}' for x in e['rates'])} |")
    met = "met" if v["met"] else "NOT met"
    lines += ["", f"- gateway ÷ Apprise with its throttle off ({LABELS[v['against']][len('Apprise, '):]}, the faster "
                  f"variant): {v['ratio_throttle_off']:.1f}× (target ≥ {TARGET:g}×): **{met}**"]
    installed = next((e for e in summary if e["what"] == AS_INSTALLED), None)
    if installed is not None:
        gaps = installed["gaps_s"]
        lines.append(f"- gateway ÷ Apprise as installed: {v['ratio_as_installed']:,.0f}×; Apprise as installed took "
                     f"{installed['seconds_per_email']:.2f} s per email over {installed['count']} emails"
                     + (f", {statistics.mean(gaps):.2f} s between one send's end and the next's (min {min(gaps):.2f}, "
                        f"max {max(gaps):.2f}); the first send does not wait" if gaps else ""))
    lines += ["", "| check | |", "|---|---|",
              *[f"| {name} | {'ok' if good else '**FAILED**'} |" for name, good in run["checks"].items()], ""]
    return "\n".join(lines)


# Running


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emails", type=int, default=1000, help="emails per variant and round (default 1000)")
    p.add_argument("--throttled-emails", type=int, default=5,
                   help="emails through Apprise as installed, 5.5 s apart (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the unthrottled variants (default 3)")
    p.add_argument("--smoke", action="store_true", help="20 emails, 2 throttled, 1 round: checks the bench runs")
    p.add_argument("--note", default="", help="a line for the report: what code was measured, what else ran")
    standalone.add_out_argument(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.emails, args.throttled_emails, args.rounds = SMOKE["emails"], SMOKE["throttled_emails"], SMOKE["rounds"]
    if args.emails < 1 or args.rounds < 1 or not 2 <= args.throttled_emails <= args.emails:
        p.error("--emails and --rounds must be positive, --throttled-emails between 2 and --emails")
    args.out = standalone.out_folder(args.out, args.smoke)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        apprise_version = version("apprise")
    except PackageNotFoundError:
        print("bench.peer needs apprise: `make bench` installs it (the `bench` extra)", file=sys.stderr)
        return 2
    run = standalone.start_run("bench.peer", argv, vars(args))
    run["apprise"] = apprise_version
    say(f"peer: nproc {run['machine']['nproc']}, load average {run['machine']['load_average_at_start']}")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-peer-") as tmp:
        run["results"], run["sink_port"] = asyncio.run(measure(Path(tmp), emails=args.emails,
                                                               throttled=args.throttled_emails, rounds=args.rounds))
    run["summary"] = summarize(run["results"])
    run["verdict"] = verdicts(run["summary"])
    run["checks"] = checks(run)
    standalone.publish(run, markdown, args.out, "smoke-peer-" if args.smoke else "peer-")
    return 0 if all(run["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
