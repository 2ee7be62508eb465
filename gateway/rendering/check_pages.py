"""`templates check` for the pages people open (`templates/_page/`, the consumer's page): each
locale's pages rendered in each of their states with a sample made from protocol_history's, so
that an edit that breaks one is found before a consumer opens it."""

from __future__ import annotations

from typing import Any

from gateway.rendering.numbers import groups
from gateway.rendering.templates import PAGES, TemplateError, Templates

PAGE_FILES = ("protocol.html.j2", "not_found.html.j2", "error.html.j2")


def page_samples(templates: Templates) -> list[tuple[str, dict[str, Any]]]:
    base = dict(templates.manifest("protocol_history").sample)
    protocol = base["protocol"]
    context = {
        "timezone": base["timezone"], "company": base["company"], "protocol": protocol,
        "number_groups": groups(protocol["number"]), "history": base["history"],
        "contacts": {"email": "m***@example.com", "phone": "+55119****4321"},
        "can": {"email": True, "sms": True}, "answer": None,
    }
    queued = {"queued": True, "limited": False, "channel": "email", "to": "m***@example.com",
              "due_at": protocol["deadline_at"]}
    return [("as shown", context),
            ("after a request", {**context, "answer": queued}),
            ("past the limit", {**context, "answer": {"queued": False, "limited": True, "minutes": 17}}),
            ("answered, no contact to send to", {**context, "protocol": {**protocol, "status": "resolved",
                                                                       "resolved_at": protocol["deadline_at"]},
                                                 "contacts": {"email": None, "phone": None},
                                                 "can": {"email": False, "sms": False}})]


def check_pages(templates: Templates) -> list[TemplateError]:
    """The errors rendering each page of each locale in each state (none: every page renders)."""
    folder = templates.folder / PAGES
    if not folder.is_dir() or "protocol_history" not in templates.names():
        return []
    errors: list[TemplateError] = []
    samples = page_samples(templates)
    for locale in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        for file in PAGE_FILES:
            for state, context in samples if file == "protocol.html.j2" else samples[:1]:
                try:
                    templates.render_page(file, locale, context)
                except TemplateError as exc:
                    errors.append(TemplateError(f"{exc.message} ({state})", file=exc.file, line=exc.line,
                                                variable=exc.variable))
                    break
    return errors
