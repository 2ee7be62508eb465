"""`protocol-gateway templates check`: every template, locale and channel rendered with the
samples its `template.toml` ships, and what a consumer message must show looked for in it.

Findings are `error` (the check fails), `warning` (fails only with `--strict`) or `info`.
What is looked for, per channel, is the audience's floor (a consumer email shows the number,
the date and time opened with its zone, the subject and the deadline; a consumer SMS the
number, the date and time and the subject) plus the template's own `required_fields`, each
value as the filters format it: a date-time as `|datetime` unless the field says `|date`,
`|time` or `|any` (shown in some form: the output changes when the value does).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from babel import Locale, UnknownLocaleError

from gateway.rendering.check_pages import check_pages
from gateway.rendering.check_whatsapp import WhatsAppReport, check_whatsapp
from gateway.rendering.dates import formatted, formatting_locale
from gateway.rendering.numbers import grouped
from gateway.rendering.page_link import render_consumer
from gateway.rendering.sms import SmsInfo, clean_spaces, transliterate_gsm7
from gateway.rendering.templates import (
    CHANNEL_FILES,
    MANIFEST,
    Manifest,
    Rendered,
    TemplateError,
    Templates,
)

Level = Literal["error", "warning", "info"]

# The ways a consumer may be told to ask for the history (rendering/context.py, `ask`), each
# combination the check renders: with everything, with nothing, and each alone.
_ASK_ALL = {"sms_number": "+55 11 4000-4000", "reply": True, "email": "sac@acme.example",
            "website": "https://acme.example/atendimento", "whatsapp_reply": True}
_ASK_NONE = {"sms_number": None, "reply": False, "email": None, "website": None, "whatsapp_reply": False}
ASK_VARIANTS: dict[str, dict[str, Any]] = {
    "with every way to ask set up": _ASK_ALL,
    "with no way to ask set up (no inbound SMS, no Reply-To, no support address)": _ASK_NONE,
    **{f"with only ask.{key} set up": {**_ASK_NONE, key: _ASK_ALL[key]} for key in _ASK_ALL},
}
# What a render must never show: a missing value printed as such.
PLACEHOLDER = re.compile(r"\b(None|null|undefined|nan)\b|\{\{|\}\}|\[\[|\]\]")
# Sentences that tell the consumer to do something, by what they need; a render whose
# combination lacks it must not contain them. Lower-case, per language.
INSTRUCTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "pt": {"sms_number": ("por sms para", "por sms ao", "responda protocolo", "para o nosso número"),
           "reply": ("responda a este e-mail", "responder a este e-mail", "respondendo a este e-mail"),
           "email": ("escreva para", "escrevendo para"),
           "whatsapp_reply": ("responda a esta mensagem",)},
    "es": {"sms_number": ("por sms al", "por sms a nuestro", "a nuestro número"),
           "reply": ("responda a este correo", "responder a este correo"),
           "email": ("escriba a", "escribiendo a"),
           "whatsapp_reply": ("responda a este mensaje",)},
    "en": {"sms_number": ("by sms to", "text protocol", "to our number"),
           "reply": ("reply to this email", "replying to this email"),
           "email": ("write to", "writing to"),
           "whatsapp_reply": ("reply to this message",)},
    "ca": {"sms_number": ("per sms al", "per sms a ", "al nostre número"),
           "reply": ("responeu aquest correu", "responent aquest correu"),
           "email": ("escriviu a", "escrivint a"),
           "whatsapp_reply": ("responeu aquest missatge",)},
    "gl": {"sms_number": ("por sms ao", "por sms a ", "ao noso número"),
           "reply": ("responda a este correo", "respondendo a este correo"),
           "email": ("escriba a", "escribindo a"),
           "whatsapp_reply": ("responda a esta mensaxe",)},
    "eu": {"sms_number": ("zenbakira", "sms bidez +"),
           "reply": ("erantzun mezu honi", "mezu honi erantzun"),
           "email": ("idatzi ", "helbidera idatzi"),
           "whatsapp_reply": ("mezu honen erantzun",)},
}
EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2

# What the audience requires of every template about a protocol, per channel (DESIGN, Templates).
CONSUMER_FLOOR: dict[str, tuple[str, ...]] = {
    "email": ("protocol.number", "protocol.opened_at|datetime", "protocol.subject", "protocol.deadline_at|date"),
    "sms": ("protocol.number", "protocol.opened_at|datetime", "protocol.subject"),
    "whatsapp": ("protocol.number", "protocol.opened_at|datetime", "protocol.subject"),
}
HOW = ("datetime", "date", "time", "any")
# The file that holds a channel's text, where a finding about what the text says points.
TEXT_FILES = {"email": "email.txt.j2", "sms": "sms.j2", "whatsapp": "whatsapp.j2"}
SHORTENED_MIN = 20  # characters of a text that must show before an ellipsis for it to count as shown
_ELLIPSES = ("...", "…")


@dataclass(frozen=True)
class Finding:
    level: Level
    file: str  # relative to the templates folder
    message: str
    line: int | None = None
    variable: str | None = None
    template: str | None = None
    locale: str | None = None
    channel: str | None = None

    def text(self) -> str:
        """`file:line: level: message`, or `file: level: message` when no line applies."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.level}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "file": self.file, "line": self.line, "message": self.message,
                "variable": self.variable, "template": self.template, "locale": self.locale, "channel": self.channel}


@dataclass(frozen=True)
class SmsReport:
    """The SMS of one template and locale for its longest sample."""

    template: str
    locale: str
    sample: str
    sent: SmsInfo  # what goes over the air with the current sms.transliterate
    written: SmsInfo  # as the template wrote it
    transliterated: SmsInfo  # had it been transliterated
    transliterate: bool

    def as_dict(self) -> dict[str, Any]:
        def info(i: SmsInfo) -> dict[str, Any]:
            return {"encoding": i.encoding, "units": i.units, "segments": i.segments}

        return {"template": self.template, "locale": self.locale, "sample": self.sample, "transliterate": self.transliterate,
                **info(self.sent), "as_written": info(self.written), "transliterated": info(self.transliterated)}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    sms: list[SmsReport] = field(default_factory=list)
    whatsapp: list[WhatsAppReport] = field(default_factory=list)
    templates: int = 0
    locales: int = 0
    renders: int = 0

    @property
    def errors(self) -> int:
        return sum(f.level == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.level == "warning" for f in self.findings)

    def exit_code(self, *, strict: bool = False) -> int:
        return EXIT_ERRORS if self.errors or (strict and self.warnings) else EXIT_OK

    def summary(self, *, strict: bool = False) -> str:
        verdict = "FAILED" if self.exit_code(strict=strict) else "ok"
        return (f"templates check: {verdict}: {_n(self.templates, 'template')}, {_n(self.locales, 'locale')}, "
                f"{_n(self.renders, 'render')}: {_n(self.errors, 'error')}, {_n(self.warnings, 'warning')}"
                + (" (strict: warnings fail)" if strict and self.warnings else ""))

    def as_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {"ok": self.exit_code(strict=strict) == EXIT_OK, "strict": strict,
                "summary": {"templates": self.templates, "locales": self.locales, "renders": self.renders,
                            "errors": self.errors, "warnings": self.warnings},
                "findings": [f.as_dict() for f in self.findings], "sms": [s.as_dict() for s in self.sms],
                "whatsapp": [w.as_dict() for w in self.whatsapp]}


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class CheckUsageError(Exception):
    """The check cannot run (no such folder, no such template): exit status 2."""


def check_templates(templates: Templates, *, max_segments: int, names: Sequence[str] | None = None) -> Report:
    if not templates.folder.is_dir():
        raise CheckUsageError(f"no templates folder at {templates.folder}")
    available = templates.names()
    unknown = [n for n in names or () if n not in available]
    if unknown:
        raise CheckUsageError(f"no template {unknown[0]!r} in {templates.folder}")
    report = Report()
    for name in names or available:
        _TemplateCheck(templates, name, max_segments, report).run()
    if not names:  # the whole folder: its pages for people too (the consumer's page)
        for error in check_pages(templates):
            report.findings.append(Finding("error", error.file, error.message, error.line, error.variable))
    return report


class _TemplateCheck:
    def __init__(self, templates: Templates, name: str, max_segments: int, report: Report) -> None:
        self.templates, self.name, self.max_segments, self.report = templates, name, max_segments, report
        self._seen: set[tuple[str, int | None, str]] = set()

    def add(self, level: Level, file: str, message: str, *, line: int | None = None, variable: str | None = None,
            locale: str | None = None, channel: str | None = None) -> None:
        if (file, line, message) in self._seen:  # the same fault met again with another sample
            return
        self._seen.add((file, line, message))
        self.report.findings.append(Finding(level, file, message, line, variable, self.name, locale, channel))

    def run(self) -> None:
        self.report.templates += 1
        try:
            manifest = self.templates.manifest(self.name)
        except TemplateError as exc:
            self.add("error", exc.file, exc.message, line=exc.line)
            return
        locales = self.templates.locales(self.name)
        self.report.locales += len(locales)
        if not locales:
            self.add("error", self.name, "no locale folders (such as pt-BR/)")
            return
        self._check_locale_names(locales)
        have = self._check_files(locales)
        for name, reason in manifest.waived.items():
            self.add("info", f"{self.name}/{MANIFEST}", f"waives {name}: {reason}")
        for locale in locales:
            for channel in self.templates.channels(self.name, locale):
                if set(CHANNEL_FILES[channel]) <= have[locale]:  # a missing file is reported once, above
                    self._check_channel(manifest, locale, channel)

    def _check_locale_names(self, locales: list[str]) -> None:
        for locale in locales:
            try:
                Locale.parse(locale, sep="-")
            except (ValueError, UnknownLocaleError):
                self.add("error", f"{self.name}/{locale}", "not a locale (expected a tag such as pt-BR, es or en)",
                         locale=locale)
        if self.templates.default_locale not in locales:
            self.add("error", f"{self.name}/{self.templates.default_locale}",
                     f"missing: the default locale {self.templates.default_locale} is where others fall back to")

    def _check_files(self, locales: list[str]) -> dict[str, set[str]]:
        """A locale must have every file another locale has, and every file of a channel it has."""
        have = {loc: {f for files in CHANNEL_FILES.values() for f in files
                      if (self.templates.folder / self.name / loc / f).is_file()} for loc in locales}
        for locale, files in have.items():
            wanted = set().union(*have.values())
            for channel, channel_files in CHANNEL_FILES.items():
                if files & set(channel_files):
                    wanted |= set(channel_files)
            for missing in sorted(wanted - files):
                others = [loc for loc in locales if missing in have[loc]]
                why = f"{', '.join(others)} {'has' if len(others) == 1 else 'have'} it" if others else \
                    "its channel needs " + ", ".join(_channel_files(missing))
                self.add("error", f"{self.name}/{locale}/{missing}", f"missing: {why}", locale=locale)
        return have

    def _check_channel(self, manifest: Manifest, locale: str, channel: str) -> None:
        rendered: dict[str, Rendered] = {}
        failed: set[tuple[str, int | None, str]] = set()
        for sample_name, sample in manifest.all_samples().items():
            self.report.renders += 1
            try:
                # As sent: by SMS the page's link only where it costs no segment (rendering/page_link.py)
                rendered[sample_name] = render_consumer(self.templates, self.name, channel, locale,  # type: ignore[arg-type]
                                                        sample, fallback=False)
            except TemplateError as exc:
                if (exc.file, exc.line, exc.message) in failed:
                    continue  # the same fault with another sample
                failed.add((exc.file, exc.line, exc.message))
                suffix = "" if sample_name == "sample" else f" (with [samples.{sample_name}])"
                self.add("error", exc.file, exc.message + suffix, line=exc.line, variable=exc.variable,
                         locale=locale, channel=channel)
        main = rendered.get("sample")
        if main is not None and main.locale == locale:
            self._check_required(manifest, locale, channel, main)
            if manifest.audience == "consumer":
                self._check_what_it_asks(manifest, locale, channel)
        if channel == "sms" and rendered:
            self._report_sms(locale, rendered, split=manifest.sms_split)
        if channel == "whatsapp":
            found = check_whatsapp(self.templates, self.name, manifest, locale, rendered, self.add)
            if found is not None:
                self.report.whatsapp.append(found)

    # What a consumer message may say: every combination of what is set up

    def _check_what_it_asks(self, manifest: Manifest, locale: str, channel: str) -> None:
        """Render the sample under each combination of what is configured and possible for the
        consumer (inbound SMS, replies, a support address, a website): no render may show a
        placeholder, nor tell the consumer to do what that combination does not allow."""
        language = locale.split("-")[0].lower()
        for variant, ask in ASK_VARIANTS.items():
            sample = _deep_merge_ask(manifest.sample, ask)
            self.report.renders += 1
            try:
                out = self.templates.render(self.name, channel, locale, sample, fallback=False)  # type: ignore[arg-type]
            except TemplateError as exc:
                self.add("error", exc.file, f"{exc.message} (with {variant})", line=exc.line, variable=exc.variable,
                         locale=locale, channel=channel)
                continue
            file = f"{self.name}/{locale}/{TEXT_FILES[channel]}"
            for part, html_ in ((out.subject or "", False), (out.text, False), (out.html or "", True)):
                text = _visible(part, html_=html_)
                placeholder = PLACEHOLDER.search(text)
                if placeholder:
                    self.add("error", file, f"shows a placeholder {placeholder.group(0)!r} {variant}",
                             locale=locale, channel=channel)
                for condition, phrases in INSTRUCTIONS.get(language, {}).items():
                    if ask[condition]:
                        continue
                    said = next((ph for ph in phrases if ph.lower() in text.lower()), None)
                    if said:
                        self.add("error", file, f"says {said!r} {variant}: show it only when "
                                 f"ask.{condition} is set", locale=locale, channel=channel)

    # Required fields

    def _required(self, manifest: Manifest, channel: str) -> list[str]:
        floor: tuple[str, ...] = ()
        if manifest.audience == "consumer" and isinstance(manifest.sample.get("protocol"), Mapping):
            floor = tuple(spec for spec in CONSUMER_FLOOR.get(channel, ()) if _path(spec) not in manifest.waived)
        specs = list(dict.fromkeys(floor + tuple(manifest.required_fields.get(channel, ()))))
        return specs

    def _check_required(self, manifest: Manifest, locale: str, channel: str, main: Rendered) -> None:
        base = f"{self.name}/{locale}"
        outputs = ({f"{base}/email.txt.j2": main.text, f"{base}/email.html.j2": main.html or ""}
                   if channel == "email" else {f"{base}/{TEXT_FILES[channel]}": main.text})
        timezone = str(manifest.sample.get("timezone", "UTC"))
        fmt_locale = formatting_locale(locale, locale)
        for spec in self._required(manifest, channel):
            path, how = _path(spec), _how(spec)
            if how not in HOW:
                self.add("error", f"{self.name}/{MANIFEST}", f"required field {spec!r}: after '|' expected one of "
                         + ", ".join(HOW))
                continue
            try:
                value = _lookup(manifest.sample, path)
            except LookupError:
                self.add("error", f"{self.name}/{MANIFEST}",
                         f"required field {path!r} is not in [sample]: add a realistic value to check it against")
                continue
            if how == "any":
                if not self._changes_output(manifest, locale, channel, path, main):
                    self.add("error", next(iter(outputs)), f"does not show {path}: the output is the same whatever its value",
                             variable=path, locale=locale, channel=channel)
                continue
            sms = channel == "sms"
            show: Callable[[str], str] = (lambda s: _sms_form(s, self.templates.sms_transliterate)) if sms else (lambda s: s)
            for file, out in outputs.items():
                text = _visible(out, html_=file.endswith(".html.j2"))
                problem = _shown(value, how, text, show=show, timezone=timezone, locale=fmt_locale)
                if problem is not None:
                    self.add("error", file, f"does not show {path}{_as(how, value)}: {problem}",
                             variable=path, locale=locale, channel=channel)

    def _changes_output(self, manifest: Manifest, locale: str, channel: str, path: str, main: Rendered) -> bool:
        changed = _replace(manifest.sample, path, _other(_lookup(manifest.sample, path)))
        try:
            again = render_consumer(self.templates, self.name, channel, locale, changed,  # type: ignore[arg-type]
                                    fallback=False)
        except TemplateError:
            return True  # it reads the value: a different one changes what happens
        return (again.subject, again.text, again.html) != (main.subject, main.text, main.html)

    # SMS

    def _report_sms(self, locale: str, rendered: dict[str, Rendered], *, split: bool) -> None:
        sample, longest = max(rendered.items(), key=lambda kv: (kv[1].sms.segments, kv[1].sms.units)  # type: ignore[union-attr]
                              if kv[1].sms else (0, 0))
        assert longest.sms and longest.sms_written and longest.sms_transliterated
        report = SmsReport(self.name, locale, sample, longest.sms, longest.sms_written, longest.sms_transliterated,
                           longest.transliterated)
        self.report.sms.append(report)
        file = f"{self.name}/{locale}/sms.j2"
        which = "" if len(rendered) == 1 else f" (longest sample: {sample})"
        if longest.transliterated:
            note = f"sent transliterated: {_info(longest.sms)}; as written: {_info(longest.sms_written)}"
        else:
            note = f"{_info(longest.sms)}; transliterated (sms.transliterate = true): {_info(longest.sms_transliterated)}"
        if split:
            note += "; sent in parts of at most fallback.max_sms_segments segments ([sms] split)"
        self.add("info", file, note + which, locale=locale, channel="sms")
        if longest.sms.segments > self.max_segments and not split:
            self.add("warning", file, f"{longest.sms.segments} segments for sample {sample!r}, above sms.max_segments "
                     f"({self.max_segments}): shorten the text"
                     + ("" if longest.transliterated or longest.sms_transliterated.segments > self.max_segments
                        else " or set sms.transliterate = true"), locale=locale, channel="sms")


def _info(info: SmsInfo) -> str:
    unit = "septets" if info.encoding == "GSM-7" else "UTF-16 units"
    return f"{info.encoding}, {_n(info.segments, 'segment')} ({info.units} {unit})"


def _channel_files(file: str) -> tuple[str, ...]:
    return next((files for files in CHANNEL_FILES.values() if file in files), (file,))


def _path(spec: str) -> str:
    return spec.split("|", 1)[0].strip()


def _how(spec: str) -> str:
    return spec.split("|", 1)[1].strip() if "|" in spec else "datetime"


def _as(how: str, value: Any) -> str:
    return f" as {how}" if isinstance(value, datetime) else ""


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise LookupError(path)
    return data


def _replace(data: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if isinstance(data, list):
        index = int(head)
        return [(_replace(item, rest, value) if rest else value) if i == index else item for i, item in enumerate(data)]
    return {**data, head: _replace(data[head], rest, value) if rest else value}


def _other(value: Any) -> Any:
    """A value of the same kind that any honest rendering shows differently."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, datetime):
        return value + timedelta(days=33, hours=5, minutes=7)
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return "Zq" + value[::-1] if value else "Zq"
    if isinstance(value, list):
        return value[:-1] if value else ["Zq"]
    if isinstance(value, Mapping):
        return {k: _other(v) for k, v in value.items()}
    return "Zq"


def _visible(text: str, *, html_: bool) -> str:
    """Text as a reader sees it: tags dropped and entities decoded in HTML, whitespace folded."""
    if html_:
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return " ".join(text.split())


def _sms_form(text: str, transliterate: bool) -> str:
    text = clean_spaces(text)
    return transliterate_gsm7(text) if transliterate else text


def _shown(value: Any, how: str, text: str, *, show: Callable[[str], str], timezone: str, locale: str) -> str | None:
    """None when `value` shows in `text`, else what was expected."""
    if isinstance(value, bool) or value is None:
        return "a true/false or empty value cannot be looked for: mark the field '|any'"
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return "the sample's date-time has no offset: write it as 2026-11-22T14:43:00Z"
        if how not in ("datetime", "date", "time"):
            return f"'|{how}' does not apply to a date-time"
        expected = _fold(show(formatted(value, how, timezone=timezone, locale=locale)))
        # `datetime("short")` names the zone in fewer letters (SMS): either form shows it.
        shorter = _fold(show(formatted(value, how, timezone=timezone, locale=locale, short=True)))
        return None if expected in text or shorter in text else f"expected {expected!r}"
    if isinstance(value, (str, int, float)):
        expected = _fold(show(str(value)))
        if not expected or expected in text or _shortened(expected, text):
            return None
        if expected.isdigit() and _fold(grouped(expected)) in text:  # a number shown in groups
            return None
        return f"expected {expected!r}" if len(expected) <= 80 else f"expected {expected[:77]!r}..."
    if isinstance(value, list):
        if not value:
            return "the sample's list is empty: give it an item to look for"
        for index, item in enumerate(value):
            problem = _shown(item, how, text, show=show, timezone=timezone, locale=locale)
            if problem is not None:
                return f"item {index}: {problem}"
        return None
    if isinstance(value, Mapping):
        # A table (a protocol in a list, a history entry) is shown when something of it is.
        for item in value.values():
            if isinstance(item, datetime):
                if any(_shown(item, h, text, show=show, timezone=timezone, locale=locale) is None
                       for h in ("datetime", "date")):
                    return None
            elif not isinstance(item, (bool, list, Mapping)) and item is not None and \
                    _shown(item, how, text, show=show, timezone=timezone, locale=locale) is None:
                return None
        return "none of its values is shown"
    return f"cannot look for a value of type {type(value).__name__}"


def _fold(text: str) -> str:
    return " ".join(text.split())


def _shortened(expected: str, text: str) -> bool:
    """`expected` cut after at least SHORTENED_MIN of its characters, then an ellipsis (the
    `truncate` filter's way)."""
    if len(expected) <= SHORTENED_MIN:
        return False
    head = expected[:SHORTENED_MIN]
    start = text.find(head)
    while start >= 0:
        end = start + SHORTENED_MIN
        while end < len(text) and end - start < len(expected) and text[end] == expected[end - start]:
            end += 1
        if text[end:].lstrip().startswith(_ELLIPSES):
            return True
        start = text.find(head, start + 1)
    return False


def _deep_merge_ask(sample: Mapping[str, Any], ask: Mapping[str, Any]) -> dict[str, Any]:
    """The sample with `ask` replaced, and the company's support address only where `ask` has one."""
    company = {**(sample.get("company") or {}), "support_email": ask["email"], "website": ask["website"]}
    return {**sample, "ask": dict(ask), "company": company}
