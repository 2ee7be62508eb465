"""What `templates check` holds a WhatsApp text to, beyond what every channel is held to.

A template with `[whatsapp] variables` goes outside the 24-hour window as an approved template,
so for each sample: every variable maps to a field that has a value, the text is within Meta's
1,024 characters for a template body, and the approved text kept beside the SID (`approved`),
filled with the sample's variables, reads exactly as `whatsapp.j2` renders (else the record
would say one thing and the consumer read another). Without `approved`, the text must still be
expressible as one: each variable's value shows in it, so `approval_text` can give the body to
submit. A template without variables is free text only (an answer inside the window): at most
4,096 characters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.rendering.templates import MANIFEST, Manifest, Rendered, TemplateError, Templates
from gateway.rendering.whatsapp import approval_text, fill


@dataclass(frozen=True)
class WhatsAppReport:
    """The WhatsApp text of one template and locale for its longest sample."""

    template: str
    locale: str
    sample: str
    characters: int
    limit: int
    kind: str  # "template" (approved, with variables) or "free_text" (inside the window only)
    content_sid: str | None
    approval_text: str | None  # the body to submit for approval, with {{1}}...

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template, "locale": self.locale, "sample": self.sample,
                "characters": self.characters, "limit": self.limit, "kind": self.kind,
                "content_sid": self.content_sid, "approval_text": self.approval_text}


Add = Callable[..., None]  # _TemplateCheck.add(level, file, message, *, variable=, locale=, channel=)


def check_whatsapp(templates: Templates, name: str, manifest: Manifest, locale: str,
                   rendered: Mapping[str, Rendered], add: Add) -> WhatsAppReport | None:
    spec = manifest.whatsapp
    samples = manifest.all_samples()
    file, toml = f"{name}/{locale}/whatsapp.j2", f"{name}/{MANIFEST}"
    limit = spec.limit
    submit = None
    for sample_name, out in rendered.items():
        which = "" if sample_name == "sample" else f" (with [samples.{sample_name}])"
        if len(out.text) > limit:
            what = "an approved template's body" if spec.variables else "a free-text message"
            add("error", file, f"{len(out.text)} characters{which}: WhatsApp takes at most {limit:,} for {what}",
                locale=locale, channel="whatsapp")
        if not spec.variables:
            continue
        try:
            values = templates.whatsapp_values(out, locale, samples[sample_name], spec)
        except TemplateError as exc:
            add("error", toml, f"{exc.message}{which}", variable=exc.variable,
                locale=locale, channel="whatsapp")
            continue
        empty = [k for k, v in values.items() if not v or v in ("None", "null")]
        for key in empty:
            add("error", toml, f'[whatsapp] variables "{key}" ({spec.variables[key]}) is empty{which}: WhatsApp '
                "refuses an empty variable; map it to a field every message has", locale=locale, channel="whatsapp")
        if empty:
            continue
        approved = spec.approved.get(locale)
        if approved is not None:
            filled = fill(approved, values)
            if filled != out.text:
                add("error", toml, f"[whatsapp] approved.{locale} filled with the sample's variables differs from "
                    f"{file}{which}: {_first_difference(filled, out.text)}", locale=locale, channel="whatsapp")
            continue
        text = approval_text(out.text, values)
        missing = [k for k in values if f"{{{{{k}}}}}" not in text]
        for key in missing:
            add("error", file, f'does not show [whatsapp] variable "{key}" ({spec.variables[key]}){which}: '
                "the approved template would not match this text", variable=spec.variables[key], locale=locale,
                channel="whatsapp")
        if not missing and sample_name == "sample":
            submit = text
    sid = spec.sid_for(locale)
    if spec.variables and sid is None and rendered:
        add("info", file, "no content_sid for this locale in [whatsapp]: outside the 24-hour window this message "
            "cannot go by Twilio's WhatsApp (the chain's next channel takes it); `protocol-gateway templates "
            f"preview {name} --channel whatsapp --locale {locale}` prints the text to submit for approval",
            locale=locale, channel="whatsapp")
    if not rendered:
        return None
    sample, longest = max(rendered.items(), key=lambda kv: len(kv[1].text))
    return WhatsAppReport(name, locale, sample, len(longest.text), limit, spec.kind, sid,
                          submit or spec.approved.get(locale))


def _first_difference(expected: str, got: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return f"at character {at + 1}, the approved text has {expected[at:at + 30]!r}, whatsapp.j2 {got[at:at + 30]!r}"
