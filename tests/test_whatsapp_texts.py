"""WhatsApp texts (issue 16, README "WhatsApp"): one `whatsapp.j2` per consumer template and
locale.

A business-initiated message goes out as a template Meta approved, so its `whatsapp.j2` must be
one fixed text with numbered variables, listed in `template.toml` `[whatsapp] variables`: each
variable once in the source as a bare `{{ expr }}`, numbered in the order it first appears,
never two side by side without words between, the text neither starting nor ending with one,
at most 1,024 characters. The free texts (protocol_history, inbound_reply) are sent only inside
the 24-hour window: at most 4,096 characters. None shows a placeholder.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import gateway
from gateway.rendering.check import PLACEHOLDER
from gateway.rendering.dates import formatted
from gateway.rendering.templates import Templates

SHIPPED = Path(gateway.__file__).parent / "templates"
FREE_TEXT = ("protocol_history", "inbound_reply")
TEMPLATE_LIMIT, FREE_TEXT_LIMIT = 1024, 4096
ASK_NONE = {"sms_number": None, "reply": False, "email": None, "website": None, "whatsapp_reply": False}
ASK_ALL = {"sms_number": "+55 11 4000-4000", "reply": True, "email": "sac@acme.example",
           "website": "https://acme.example/atendimento", "whatsapp_reply": True}
EXPRESSION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
# Conditions a fixed text may take: on the installation's settings only, never on the protocol.
SETTINGS_ONLY = re.compile(r"^(not\s+)?(page\.url|ask\.[a-z_]+|company\.[a-z_]+)$")


def consumer_templates() -> list[str]:
    names = []
    for folder in sorted(SHIPPED.iterdir()):
        manifest = folder / "template.toml"
        if manifest.is_file() and tomllib.loads(manifest.read_text("utf-8")).get("audience") == "consumer":
            names.append(folder.name)
    return names


def whatsapp_files() -> list[tuple[str, str]]:
    return [(name, locale.name) for name in consumer_templates() for locale in sorted((SHIPPED / name).iterdir())
            if (locale / "whatsapp.j2").is_file()]


def variables(name: str) -> dict[str, str]:
    data = tomllib.loads((SHIPPED / name / "template.toml").read_text("utf-8"))
    return dict(data.get("whatsapp", {}).get("variables", {}))


def lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def shown(sample: dict[str, Any], spec: str, locale: str) -> str:
    """What the variable `spec` ("protocol.opened_at|datetime") shows for this sample."""
    path, _, how = spec.partition("|")
    value = lookup(sample, path)
    if isinstance(value, datetime):
        return formatted(value, how or "datetime", timezone=sample["timezone"], locale=locale)
    return str(value)


def contexts(sample: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The sample as written, and with every way to ask, with none, and without the page."""
    return [("sample", sample),
            ("every way to ask", {**sample, "ask": ASK_ALL}),
            ("no way to ask", {**sample, "ask": ASK_NONE}),
            ("no WhatsApp replies", {**sample, "ask": {**sample["ask"], "whatsapp_reply": False}}),
            ("no consumer page", {**sample, "page": {"url": None}})]


@pytest.fixture(scope="module")
def shipped() -> Templates:
    return Templates(SHIPPED, "pt-BR")


def test_every_consumer_template_and_locale_has_a_whatsapp_text() -> None:
    written = set(whatsapp_files())
    for name in consumer_templates():
        if name == "sms_fallback":
            continue  # written with the channel itself
        for locale in sorted(p.name for p in (SHIPPED / name).iterdir() if p.is_dir()):
            assert (name, locale) in written, f"{name}/{locale}/whatsapp.j2 is missing"
        manifest = tomllib.loads((SHIPPED / name / "template.toml").read_text("utf-8"))
        assert "whatsapp" in manifest["required_fields"], name
        assert manifest["sample"]["ask"].get("whatsapp_reply") is True, name
        assert bool(variables(name)) == (name not in FREE_TEXT), name


@pytest.mark.parametrize(("name", "locale"), [f for f in whatsapp_files() if f[0] not in FREE_TEXT])
def test_an_approved_template_is_one_fixed_text_with_its_variables(shipped: Templates, name: str, locale: str) -> None:
    source = (SHIPPED / name / locale / "whatsapp.j2").read_text("utf-8")
    body = re.sub(r"{#.*?#}", "", source, flags=re.S)
    declared = variables(name)
    assert list(declared) == [str(i) for i in range(1, len(declared) + 1)], f"{name}: variables numbered 1..n"
    specs = list(declared.values())

    # Each variable once, as a bare `{{ expr }}`, numbered in the order it first appears.
    expressions = [e.replace(" ", "") for e in EXPRESSION.findall(body)]
    for spec in specs:
        assert expressions.count(spec.replace(" ", "")) == 1, f"{name}/{locale}: {{{{ {spec} }}}} must appear once"
    order = [e for e in expressions if e in {s.replace(" ", "") for s in specs}]
    assert order == [s.replace(" ", "") for s in specs], f"{name}/{locale}: variables out of order: {order}"
    # Anything else printed is installation text or a macro of the partial.
    for expression in expressions:
        assert (expression in {s.replace(" ", "") for s in specs} or expression == "company.name"
                or expression.startswith("say.")), f"{name}/{locale}: {{{{ {expression} }}}} is not a variable"
    # Conditions only on the installation's settings, never on the protocol or the event.
    for condition in re.findall(r"{%-?\s*(?:if|elif)\s+(.*?)\s*-?%}", body):
        assert SETTINGS_ONLY.match(condition), f"{name}/{locale}: condition on {condition!r}"
    assert "consumer." not in body, f"{name}/{locale}: the consumer's name may be missing"

    manifest = shipped.manifest(name)
    for sample_name, base in manifest.all_samples().items():
        for label, context in contexts(dict(base)):
            text = shipped.render(name, "whatsapp", locale, context, fallback=False).text
            where = f"{name}/{locale} ({sample_name}, {label})"
            values = [shown(context, spec, locale) for spec in specs if lookup(context, spec.partition("|")[0])]
            assert text.strip(), where
            assert not PLACEHOLDER.search(text), f"{where}: placeholder in\n{text}"
            assert "\n\n\n" not in text and not text.startswith("\n"), where
            assert len(text) <= TEMPLATE_LIMIT, f"{where}: {len(text)} characters"
            for value in values:
                assert value in text, f"{where}: {value!r} not shown"
                assert not text.startswith(value), f"{where}: starts with a variable"
                assert not text.rstrip().endswith(value), f"{where}: ends with a variable"
            # The number shows once (the ways to ask say "the number", never repeat it).
            assert text.count(context["protocol"]["number"]) == 1, f"{where}: the number more than once"
            # Two variables never side by side: words between each pair, in the order written.
            positions = sorted((text.index(v), v) for v in values)
            for (a, va), (b, _) in zip(positions, positions[1:]):
                assert re.search(r"\w", text[a + len(va):b]), f"{where}: {va!r} next to the following variable"


@pytest.mark.parametrize(("name", "locale"), [f for f in whatsapp_files() if f[0] in FREE_TEXT])
def test_a_free_text_fits_one_message(shipped: Templates, name: str, locale: str) -> None:
    manifest = shipped.manifest(name)
    for sample_name, base in manifest.all_samples().items():
        for label, context in contexts(dict(base)):
            text = shipped.render(name, "whatsapp", locale, context, fallback=False).text
            where = f"{name}/{locale} ({sample_name}, {label})"
            assert text.strip(), where
            assert not PLACEHOLDER.search(text), f"{where}: placeholder in\n{text}"
            assert "\n\n\n" not in text, where
            assert len(text) <= FREE_TEXT_LIMIT, f"{where}: {len(text)} characters"


@pytest.mark.parametrize("locale", ["pt-BR", "es", "en", "ca", "eu", "gl"])
def test_the_history_on_whatsapp_holds_every_entry_whole(shipped: Templates, locale: str) -> None:
    sample = dict(shipped.manifest("protocol_history").sample)
    text = shipped.render("protocol_history", "whatsapp", locale, sample, fallback=False).text
    for entry in sample["history"]:
        if entry.get("text"):
            assert entry["text"] in text, entry["text"]
    assert "(" + ("zatia" if locale == "eu" else "part") not in text  # one part: no "(parte 1 de 1)"
    second = shipped.render("protocol_history", "whatsapp", locale, {**sample, "part": 2, "parts": 2},
                            fallback=False).text
    assert sample["protocol"]["number"] in second and "2" in second


@pytest.mark.parametrize("locale", ["pt-BR", "es", "en", "ca", "eu", "gl"])
def test_the_inbound_reply_names_the_sms_keyword(shipped: Templates, locale: str) -> None:
    sms = (SHIPPED / "inbound_reply" / locale / "sms.j2").read_text("utf-8")
    keyword = re.search(r"\b(HISTORICO|HISTORIAL|HISTORY|HISTORIA)\b", sms).group(1)
    sample = dict(shipped.manifest("inbound_reply").sample)
    one = {**sample, "protocols": sample["protocols"][:1]}
    text = shipped.render("inbound_reply", "whatsapp", locale, one, fallback=False).text
    assert f"{keyword} {sample['protocols'][0]['number']}" in text
