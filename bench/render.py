"""`python -m bench.render`: the CPU an event's messages cost to render, against plain Jinja2 on the same files.

    python -m bench.render                         # the opening by email and SMS, pt-BR: 2,000 events, 7 rounds
    python -m bench.render --locale es --events 5000 --rounds 9
    python -m bench.render --smoke                 # tiny sizes: proves it runs

Rendering runs inside the event's write transaction, on the one core the ingest has, so
every microsecond here is one the ingest pays (`python -m bench.profile_ingest`). Each round
renders the opening (`protocol_opened`) by email and by SMS for `--events` protocols the way
the ingest does (`MessageBuilder.render_each`: the context, the sandbox, the pinned files and
their reload checks, the SMS link rule, the notification row): once an event alone, with its
own look at the files (an event that commits alone), and once in looks of BATCH events (the
events of a shared commit, store/group_commit.py: ~25 at 50 clients). Then the baseline renders
the same files with a plain `jinja2.Environment` (no sandbox, no reload checks, no pinning,
the same filters), from a context built once. What lies between them is what the gateway
adds to Jinja itself.

Time is this process's CPU time (`time.process_time`), not the wall clock, so another tenant
of a shared machine moves it less; the report gives each variant's median and minimum over
the rounds, in microseconds per event (the two messages). Tables to stdout and to
bench/results/render-<date>-<time>.md, every round in the .json beside it.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bench import standalone
from bench.progress import say
from bench.settings import bench_settings
from gateway.app import build_runtime
from gateway.protocols.messages import MessageBuilder
from gateway.rendering.dates import formatting_locale
from gateway.rendering.sandbox import RenderContext, rendering
from gateway.store.models import Protocol

TEMPLATE = "protocol_opened"
AT = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)  # fixed: the figures must not depend on the day
FILES = {"email": ("email.subject.j2", "email.txt.j2", "email.html.j2"), "sms": ("sms.j2",)}


def protocol(n: int, locale: str) -> Protocol:
    """A protocol as the ingest holds it when it renders: inserted (an id), not in a session."""
    return Protocol(
        id=n, number=f"20261122{n:08d}", issued_by="gateway", status="open",
        subject="Cobrança indevida na fatura de outubro", category=None, profile="br-sac-2022", channel="phone",
        consumer_name="Maria Silva", consumer_email=f"cliente{n}@example.com", consumer_phone=f"+551198{n % 10**7:07d}",
        consumer_whatsapp=None, consumer_locale=locale, consumer_timezone="America/Sao_Paulo", extra=None,
        opened_at=AT, received_at=AT, deadline_at=AT, legal_hold=False, updated_at=AT, last_event_at=AT,
        notify="email,sms", parent_id=None, page_token_hash=None,
    )


BATCH = 25  # events a shared commit renders in one look at 50 clients (the ingest's batches)


def gateway_round(messages: MessageBuilder, protocols: list[Protocol], batch: int = 1) -> int:
    rendered = 0
    for start in range(0, len(protocols), batch):
        with messages.templates.one_look() if batch > 1 else contextlib.nullcontext():
            for p in protocols[start:start + batch]:
                rendered += len(messages.render_each(p, TEMPLATE, [("email", p.consumer_email),
                                                                   ("sms", p.consumer_phone)], AT))
    return rendered


def plain_environment(folder: Path, filters: dict[str, Any]) -> Environment:
    """Jinja2 as it comes, reading the same files, with the filters the templates use."""
    env = Environment(loader=FileSystemLoader(folder), undefined=StrictUndefined, auto_reload=False,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(filters)
    env.context_class = RenderContext  # how the shipped partials, imported without context, read the render's locale
    return env


def baseline_round(env: Environment, contexts: list[tuple[str, dict[str, Any]]]) -> int:
    rendered = 0
    for locale, context in contexts:
        with rendering(context):  # what the shipped partials' macros read
            for channel, files in FILES.items():
                for file in files:
                    env.get_template(f"{TEMPLATE}/{locale}/{file}").render(context)
                rendered += channel == "sms" or file == files[-1]
    return rendered


def timed(work: Callable[[], int]) -> tuple[float, int]:
    started = time.process_time()
    count = work()
    return time.process_time() - started, count


def measure(events: int, rounds: int, locale: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), f"sqlite+aiosqlite:///{tmp}/unused.db")
        runtime = build_runtime(settings)  # the gateway's own MessageBuilder, as the service has it
        messages = runtime.service.messages
        templates = messages.templates
        resolved = templates.resolve_locale(TEMPLATE, locale)
        protocols = [protocol(n, locale) for n in range(1, events + 1)]
        contexts = [(resolved, {**messages.context(p), "locale": formatting_locale(locale, resolved)})
                    for p in protocols]
        env = plain_environment(templates.folder, templates.filters)
        gateway_round(messages, protocols[:10])  # compiled and warm, both
        baseline_round(env, contexts[:10])
        work = {"gateway": lambda: gateway_round(messages, protocols),
                "gateway_batch": lambda: gateway_round(messages, protocols, BATCH),
                "baseline": lambda: baseline_round(env, contexts)}
        figures: dict[str, list[float]] = {what: [] for what in work}
        for r in range(1, rounds + 1):
            for what in list(work) if r % 2 else reversed(work):
                seconds, count = timed(work[what])
                assert count == 2 * events, (what, count)
                figures[what].append(seconds / events * 1e6)
            say(f"round {r}/{rounds}: gateway {figures['gateway'][-1]:.0f} µs alone, "
                f"{figures['gateway_batch'][-1]:.0f} µs in batches, "
                f"plain Jinja2 {figures['baseline'][-1]:.0f} µs an event")
    return standalone.cpu_summary(figures)


def markdown(run: dict[str, Any]) -> str:
    g, gb, b = run["figures"]["gateway"], run["figures"]["gateway_batch"], run["figures"]["baseline"]
    a = run["arguments"]
    lines = [f"# Rendering {run['started_at']}", "", f"Command: `{run['command']}`", ""]
    lines += standalone.machine_lines(run["machine"]) + [""]
    lines += [
        f"## `{TEMPLATE}` by email and SMS, {a['locale']}: CPU µs an event "
        f"({a['events']} events a round, {a['rounds']} rounds)", "",
        "| what | median | min | gateway ÷ baseline (median) | rounds |", "|---|---:|---:|---:|---|",
        f"| plain Jinja2, same files and filters, context built once (baseline) | {b['median_us']:.0f} | "
        f"{b['min_us']:.0f} |  | {', '.join(f'{v:.0f}' for v in b['rounds_us'])} |",
        f"| gateway: MessageBuilder.render_each, an event alone | {g['median_us']:.0f} | {g['min_us']:.0f} | "
        f"{g['median_us'] / b['median_us']:.2f} | {', '.join(f'{v:.0f}' for v in g['rounds_us'])} |",
        f"| gateway: the same in looks of {BATCH} events, as a shared commit of the ingest | "
        f"{gb['median_us']:.0f} | {gb['min_us']:.0f} | {gb['median_us'] / b['median_us']:.2f} | "
        f"{', '.join(f'{v:.0f}' for v in gb['rounds_us'])} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = standalone.sized_arguments(
        argv, prog="bench.render", doc=__doc__, size="events", default=2000, what="events", rounds=7,
        order="alternating", smoke=(20, 1),
        more=lambda p: p.add_argument("--locale", default="pt-BR", help="the consumers' locale (default pt-BR)"))
    return standalone.measured("bench.render", argv, args, lambda: measure(args.events, args.rounds, args.locale),
                               markdown, "render-")


if __name__ == "__main__":
    sys.exit(main())
