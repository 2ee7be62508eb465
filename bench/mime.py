"""`python -m bench.mime`: emails written per second by the SMTP fast writer and by the `email` package.

    python -m bench.mime                          # this tree: email_bytes against build_email + as_bytes(SMTP)
    python -m bench.mime --before main            # and the same two writers as they are at main, same run
    python -m bench.mime --emails 2000 --rounds 7
    python -m bench.mime --smoke                  # tiny sizes: proves it runs

Only the writing is timed: no network, no database. Each writer builds `--emails` copies of a
confirmation email shaped like the shipped `protocol_opened` template's (accented text and
HTML bodies, the sender's accented name, a Reply-To), once per kind of subject: plain ASCII,
accented, and a long one (a category and a company name in it). The writers take turns in a
different order each round; the report gives each one's median over the rounds.

`email_bytes` is the SMTP transport's writer; `build_email` + `as_bytes(policy=SMTP)` is the
way the `email` package writes the same message (what the transport falls back to, and what
Maildir files). `--before REV` loads `gateway/delivery/channels/email_message.py` as it is at
that git revision, so a change and what it replaced are measured side by side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import SMTP, strict
from pathlib import Path
from typing import Any

from gateway.delivery.channels import email_message
from gateway.delivery.channels.base import Message

from bench import machine, standalone
from bench.progress import say

SENDER = "Atendimento São Paulo <protocolos@example.com>"
NOW = datetime(2026, 3, 12, 15, 30, tzinfo=timezone.utc)  # the Date header; the writer's speed does not depend on it
MODULE = "gateway/delivery/channels/email_message.py"
SMOKE = {"emails": 50, "rounds": 1}
SUBJECTS = {
    "ascii": "Empresa Exemplo: protocolo de atendimento 20260312000000017",
    "accented": "Empresa Exemplo Telecomunicações: protocolo de atendimento nº 20260312000000017",
    "long": ("Empresa Exemplo Telecomunicações S.A. — Central de Relacionamento: protocolo de atendimento "
             "nº 20260312000000017, categoria cobrança indevida na fatura de março, "
             "reclamação registrada pelo canal telefone e encaminhada à ouvidoria para análise"),
}
TEXT = """Olá, Maria da Conceição.

Registramos sua solicitação. Guarde o número do seu protocolo:

20260312000000017

Aberto em: 12/03/2026 12:30 (horário de Brasília)
Assunto: Cobrança em duplicidade na fatura de março, com juros aplicados indevidamente.
Resposta até: 19/03/2026 23:59 (horário de Brasília)

Para receber o histórico completo do atendimento, sem custo, responda a este e-mail.

Empresa Exemplo Telecomunicações
"""
HTML = ("<!DOCTYPE html>\n<html lang=\"pt-BR\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>Protocolo 20260312000000017</title>\n</head>\n<body style=\"margin:0;padding:16px;"
        "font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5\">\n<div style=\"max-width:520px\">\n"
        + "".join(f"<p style=\"margin:0 0 8px\">{line}</p>\n" for line in TEXT.splitlines() if line)
        + "</div>\n</body>\n</html>\n")

Writer = Callable[[Message], bytes]


def messages(subject: str, count: int) -> list[Message]:
    return [Message(notification_id=n, channel="email", to=f"maria.conceicao{n}@example.com", text=TEXT, html=HTML,
                    subject=subject, message_id=f"<notification-{n}@gateway.example.com>", reply_to="sac@example.com")
            for n in range(count)]


def writers(module: types.ModuleType, label: str) -> dict[str, Writer]:
    def fast(m: Message) -> bytes:
        written = module.email_bytes(m, SENDER, now=NOW)
        assert written is not None, "the fast writer declined a typical message"
        return bytes(written[0])

    def package(m: Message) -> bytes:
        return bytes(module.build_email(m, SENDER).as_bytes(policy=SMTP))

    return {f"email_bytes{label}": fast, f"build_email + as_bytes(SMTP){label}": package}


def module_at(revision: str) -> types.ModuleType:
    """`email_message.py` as it is at `revision`, imported under a name of its own."""
    source = subprocess.run(["git", "show", f"{revision}:{MODULE}"], cwd=machine.ROOT, capture_output=True,
                            text=True, check=True).stdout
    module = types.ModuleType(f"email_message_at_{revision}")
    exec(compile(source, f"{revision}:{MODULE}", "exec"), module.__dict__)
    return module


def check(write: Writer, m: Message) -> int:
    """The writer's bytes parse, and say the subject given: figures of a broken writer mean nothing."""
    data = write(m)
    parsed = BytesParser(policy=strict).parsebytes(data)
    assert parsed.get_body(preferencelist=("plain",)) is not None
    if str(parsed["Subject"]) != m.subject:
        say(f"note: the subject reads back altered: {str(parsed['Subject'])[:60]!r}")
    return len(data)


def rate(write: Writer, batch: list[Message]) -> float:
    started = time.perf_counter()
    for m in batch:
        write(m)
    return len(batch) / (time.perf_counter() - started)


def measure(all_writers: dict[str, Writer], emails: int, rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for kind, subject in SUBJECTS.items():
        batch = messages(subject, emails)
        sizes = {name: check(write, batch[0]) for name, write in all_writers.items()}
        runs: dict[str, list[float]] = {name: [] for name in all_writers}
        order = list(all_writers)
        for n in range(rounds):
            for name in order[n % len(order):] + order[:n % len(order)]:
                runs[name].append(rate(all_writers[name], batch))
        say(f"{kind}: " + ", ".join(f"{name} {statistics.median(r):,.0f}/s" for name, r in runs.items()))
        figures[kind] = {name: {"median": statistics.median(r), "rounds": r, "bytes": sizes[name]}
                         for name, r in runs.items()}
    return figures


def markdown(run: dict[str, Any]) -> str:
    figures = run["figures"]
    names = list(next(iter(figures.values())))
    lines = ["# MIME writer: emails written per second", "", f"- command: `{run['command']}`",
             *standalone.machine_lines(run["machine"]), ""]
    if run.get("note"):
        lines += [f"- note: {run['note']}", ""]
    lines += ["| subject | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind, row in figures.items():
        lines.append(f"| {kind} ({len(SUBJECTS[kind])} chars) | "
                     + " | ".join(f"{row[n]['median']:,.0f} ({row[n]['bytes']:,} B)" for n in names) + " |")
    lines += ["", "Median emails/s over the rounds (bytes of one email). Fast writer against the `email` package:", ""]
    for label in run["labels"]:
        fast, package = f"email_bytes{label}", f"build_email + as_bytes(SMTP){label}"
        ratios = ", ".join(f"{kind} {row[fast]['median'] / row[package]['median']:.1f}×" for kind, row in figures.items())
        lines.append(f"- {fast.strip() or 'email_bytes'}: {ratios}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.mime", description=__doc__.split("\n\n")[0])
    p.add_argument("--emails", type=int, default=3000, help="emails written per writer, round and subject")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5); the report gives medians")
    p.add_argument("--before", metavar="REV", help=f"also measure {MODULE} as it is at this git revision")
    p.add_argument("--note", default="", help="a line for the report: what else was running")
    p.add_argument("--smoke", action="store_true", help="50 emails, 1 round: checks the bench runs")
    p.add_argument("--out", type=Path, default=None, help=f"where the report goes (default {standalone.RESULTS})")
    args = p.parse_args(argv)
    if args.smoke:
        args.emails, args.rounds = SMOKE["emails"], SMOKE["rounds"]
    if args.emails < 1 or args.rounds < 1:
        p.error("--emails and --rounds must be positive")
    args.out = standalone.out_folder(args.out, args.smoke)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = standalone.start_run("bench.mime", argv, vars(args))
    labels, all_writers = [""], writers(email_message, "")
    if args.before:
        labels = [f" at {args.before}", *labels]
        all_writers = {**writers(module_at(args.before), labels[0]), **all_writers}
    run["labels"], run["note"] = labels, args.note
    run["figures"] = measure(all_writers, args.emails, args.rounds)
    standalone.publish(run, markdown, args.out, "smoke-" if args.smoke else "mime-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
