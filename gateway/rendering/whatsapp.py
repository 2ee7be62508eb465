"""What a WhatsApp message needs beyond its text: the approved template it goes as outside the
24-hour window.

`template.toml`:

    [whatsapp]
    variables = {"1" = "protocol.number", "2" = "protocol.opened_at|datetime", "3" = "protocol.subject"}
    content_sid = {pt-BR = "HX...", es = "HX..."}       # each company's own approved templates
    approved = {pt-BR = "Seu protocolo é {{1}}, aberto em {{2}}..."}   # optional: the text as approved

Each variable is a field of the context, shown as `|datetime`, `|date` or `|time` shows it (the
same words `whatsapp.j2` uses), so the approved template filled with the variables reads as the
free text would. `templates check` holds the two together: `whatsapp.j2` rendered with a sample
must equal the approved text filled with that sample's variables, and `approval_text` gives
operations the text to submit for approval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.whatsapp import FREE_TEXT_LIMIT, TEMPLATE_BODY_LIMIT

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_HOW = ("datetime", "date", "time")
_SID = re.compile(r"HX[0-9a-fA-F]{32}")
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class WhatsAppSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WhatsAppSpec:
    variables: Mapping[str, str] = field(default_factory=dict)  # "1" -> "protocol.opened_at|datetime"
    content_sid: Mapping[str, str] = field(default_factory=dict)  # locale -> "HX..."
    approved: Mapping[str, str] = field(default_factory=dict)  # locale -> the approved body, with {{1}}

    def expression(self, key: str) -> str:
        """The Jinja expression of variable `key`, as whatsapp.j2 writes it."""
        path, _, how = self.variables[key].partition("|")
        return path.strip() + (f"|{how.strip()}" if how else "")

    def sid_for(self, locale: str) -> str | None:
        return self.content_sid.get(locale)

    @property
    def kind(self) -> str:
        """"template": goes as the approved template outside the 24-hour window; "free_text": a
        message with no variables, sent only inside it (an answer to what the consumer asked)."""
        return "template" if self.variables else "free_text"

    @property
    def limit(self) -> int:
        """Meta's most characters for such a message."""
        return TEMPLATE_BODY_LIMIT if self.variables else FREE_TEXT_LIMIT


def parse_spec(data: Any) -> WhatsAppSpec:
    """`[whatsapp]` of a template.toml; WhatsAppSpecError says which key is wrong and why."""
    if not isinstance(data, Mapping):
        raise WhatsAppSpecError("[whatsapp] must be a table")
    unknown = sorted(set(data) - {"variables", "content_sid", "approved"})
    if unknown:
        raise WhatsAppSpecError(f"[whatsapp] {unknown[0]}: not a known key (variables, content_sid, approved)")
    variables = _table(data.get("variables", {}), "variables")
    keys = sorted(variables, key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(1, len(keys) + 1)]:
        raise WhatsAppSpecError('[whatsapp] variables: keys must be "1", "2", ... in order, none missing')
    for key, spec in variables.items():
        path, _, how = spec.partition("|")
        if not _PATH.fullmatch(path.strip()) or (how and how.strip() not in _HOW):
            raise WhatsAppSpecError(f'[whatsapp] variables "{key}": expected a field such as '
                                    f'"protocol.subject" or "protocol.opened_at|datetime", not {spec!r}')
    sids = _table(data.get("content_sid", {}), "content_sid")
    for locale, sid in sids.items():
        if not _SID.fullmatch(sid):
            raise WhatsAppSpecError(f"[whatsapp] content_sid {locale}: expected a Content SID (HX and 32 hex digits)")
    approved = _table(data.get("approved", {}), "approved")
    for locale, text in approved.items():
        used = {m for m in _PLACEHOLDER.findall(text)}
        if used - set(variables):
            raise WhatsAppSpecError(f"[whatsapp] approved {locale}: {{{{{min(used - set(variables))}}}}} "
                                    "is not one of the variables")
    return WhatsAppSpec(variables, sids, approved)


def fill(approved: str, values: Mapping[str, str]) -> str:
    """The approved body as the consumer reads it, its {{n}} replaced by the values."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), approved).strip()


def approval_text(rendered: str, values: Mapping[str, str]) -> str:
    """The body to submit for approval: `rendered` with each variable's value back as {{n}}
    (the longest values first, so one value inside another is not cut)."""
    text = rendered
    for key, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if value:
            text = text.replace(value, f"{{{{{key}}}}}", 1)
    return text


def _table(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise WhatsAppSpecError(f"[whatsapp] {name}: expected a table of strings")
    return {str(k): v for k, v in value.items()}
