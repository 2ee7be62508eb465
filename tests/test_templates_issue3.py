"""The consumer templates that follow a protocol after it is opened: protocol_updated,
protocol_resolved, protocol_reopened, protocol_history, and inbound_reply (the answer to a
consumer who texts the gateway's number). Each renders from its own template.toml sample."""

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import gateway
from gateway.rendering.numbers import grouped
from gateway.rendering.sms import sms_info
from gateway.rendering.templates import Templates

SHIPPED = Path(gateway.__file__).parent / "templates"
NUMBER = "2026112200000017"
LOCALES = ("pt-BR", "es", "en", "ca", "eu", "gl")  # ca, eu, gl: Spain's Ley 10/2025, consumer templates only
EMAIL_AND_SMS = ("protocol_updated", "protocol_resolved", "protocol_reopened", "protocol_history")
NEW = (*EMAIL_AND_SMS, "inbound_reply")
CASES = [(name, channel, locale) for name in NEW for channel in ("email", "sms") for locale in LOCALES
         if (name, channel) != ("inbound_reply", "email")]
HOSTILE = "{{ 7*7 }} <script>alert(1)</script>"
LONG = "Cobrança " * 60

# What the history shows for each event type, per locale.
LABELS = {
    "pt-BR": ("Abertura", "Mensagem", "Resposta", "Reabertura", "Pedido de reenvio"),
    "es": ("Registro", "Mensaje", "Respuesta", "Reapertura", "Copia solicitada"),
    "en": ("Opened", "Message", "Answer", "Reopened", "Copy requested"),
    "ca": ("Registre", "Missatge", "Resposta", "Reobertura", "Còpia demanada"),
    "eu": ("Erregistroa", "Mezua", "Erantzuna", "Berriro irekia", "Kopia eskatua"),
    "gl": ("Rexistro", "Mensaxe", "Resposta", "Reapertura", "Copia solicitada"),
}
HISTORY_KEYWORD = {"pt-BR": "HISTORICO", "es": "HISTORIAL", "en": "HISTORY", "ca": "HISTORIAL", "eu": "HISTORIA",
                   "gl": "HISTORIAL"}


@pytest.fixture(scope="module")
def shipped() -> Templates:
    return Templates(SHIPPED, "pt-BR")


def as_context(value: Any, key: str = "") -> Any:
    """The sample as the service passes it: plain dicts and lists, and timezone-aware
    datetimes where a sample gives an ISO string (TOML datetimes are already datetimes)."""
    if isinstance(value, dict):
        return {k: as_context(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [as_context(v) for v in value]
    if isinstance(value, str) and key.endswith("_at"):
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None, f"{key}: a sample datetime needs its offset"
        return parsed
    return value


def sample(shipped: Templates, name: str) -> dict[str, Any]:
    return as_context(dict(shipped.manifest(name).sample))


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value[part]
    return value


def formatted(tmp_path: Path, locale: str, zone: str, value: datetime, *, short: bool = False) -> tuple[str, str]:
    """`value|datetime` and `value|date` as a template in `locale` shows them; `short` for
    `value|datetime("short")`, the shorter zone name an SMS uses."""
    folder = tmp_path / "fmt"
    (folder / "t" / locale).mkdir(parents=True, exist_ok=True)
    (folder / "t" / "template.toml").write_text('audience = "consumer"\n')
    how = '"short"' if short else '"long"'
    (folder / "t" / locale / "sms.j2").write_text(f"{{{{ v|datetime({how}) }}}}|{{{{ v|date }}}}", encoding="utf-8")
    text = Templates(folder, "pt-BR").render("t", "sms", locale, {"timezone": zone, "v": value}).text
    both, day = plain(text).split("|")
    return both, day


def plain(text: str) -> str:
    """Babel's narrow no-break space ("11:43\u202fAM") as a plain one: an SMS may carry either."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def numbers_in(text: str) -> set[str]:
    """Everything that looks like a protocol number (6 to 30 digits)."""
    return set(re.findall(r"\d{6,}", text))


def test_manifests(shipped: Templates) -> None:
    for name in NEW:
        manifest = shipped.manifest(name)
        assert manifest.audience == "consumer"
        assert shipped.locales(name) == ["ca", "en", "es", "eu", "gl", "pt-BR"]
        channels = ("sms", "whatsapp") if name == "inbound_reply" else ("email", "sms", "whatsapp")
        assert tuple(manifest.required_fields) == channels, name
        context = sample(shipped, name)
        for fields in manifest.required_fields.values():
            for field in fields:
                lookup(context, field.partition("|")[0])  # every required field is in the sample


@pytest.mark.parametrize(("name", "channel", "locale"), CASES)
def test_renders_from_its_sample_and_shows_the_required_fields(
    shipped: Templates, tmp_path: Path, name: str, channel: str, locale: str
) -> None:
    context = sample(shipped, name)
    rendered = shipped.render(name, channel, locale, context)  # type: ignore[arg-type]
    assert rendered.locale == locale and rendered.channel == channel
    if channel == "email":
        assert rendered.subject is not None and NUMBER in rendered.subject and "\n" not in rendered.subject
        assert rendered.html is not None and f'<html lang="{locale}">' in rendered.html
        bodies = [rendered.text, rendered.html]
        assert "Maria Silva" in rendered.text and "Acme Telecom" in rendered.text
        # Grouped where a person reads it ("2026 1122 0000 0017"); whole in the subject, to copy.
        assert f"\n{grouped(NUMBER)}\n" in rendered.text and "white-space:nowrap" in rendered.html
    else:
        assert rendered.sms is not None and rendered.sms == sms_info(rendered.text)
        bodies = [rendered.text]
    for body in map(plain, bodies):
        assert "None" not in body
        for field in shipped.manifest(name).required_fields[channel]:
            path, _, shown = field.partition("|")
            value = lookup(context, path)
            if isinstance(value, datetime):
                both, day = formatted(tmp_path, locale, context["timezone"], value, short=channel == "sms")
                assert (day if shown == "date" else both) in body, (field, both)
            elif path == "protocol.number":  # grouped in the body ("2026 1122 0000 0017"), whole elsewhere
                assert NUMBER in re.sub(r"<[^>]+>|\s", "", body), field
            elif shown != "any":
                assert str(value) in body, field  # the samples' texts fit the SMS's limits


@pytest.mark.parametrize("locale", LOCALES)
def test_history_email_lists_every_entry_with_date_time_label_and_full_text(
    shipped: Templates, tmp_path: Path, locale: str
) -> None:
    context = sample(shipped, "protocol_history")
    assert [entry["type"] for entry in context["history"]] == [
        "protocol.opened", "protocol.updated", "protocol.resolved", "protocol.reopened", "protocol.resend_requested"
    ]
    email = shipped.render("protocol_history", "email", locale, context)
    assert email.html is not None
    for body in map(plain, (email.text, email.html)):
        positions = []
        for entry, label in zip(context["history"], LABELS[locale]):
            when, _ = formatted(tmp_path, locale, context["timezone"], entry["occurred_at"])
            assert when in body and label in body, (locale, when, label)
            positions.append(body.index(when))
            if entry.get("text"):
                assert entry["text"] in body  # in full, the answer included
        assert positions == sorted(positions)  # in order


@pytest.mark.parametrize("missing", ["none", "left out"])
def test_history_entry_without_text_shows_its_date_and_label(shipped: Templates, tmp_path: Path, missing: str) -> None:
    context = sample(shipped, "protocol_history")
    entry = {key: value for key, value in context["history"][-1].items() if key != "text"}
    context["history"][-1] = {**entry, "text": None} if missing == "none" else entry  # the service passes None
    when, _ = formatted(tmp_path, "pt-BR", context["timezone"], context["history"][-1]["occurred_at"])
    short, _ = formatted(tmp_path, "pt-BR", context["timezone"], context["history"][-1]["occurred_at"], short=True)
    email = shipped.render("protocol_history", "email", "pt-BR", context)
    sms = shipped.render("protocol_history", "sms", "pt-BR", context)
    assert f"{when} - Pedido de reenvio\n" in plain(email.text)
    assert f"{short} Pedido de reenvio" in plain(sms.text).split("\n")
    for body in (email.text, email.html or "", sms.text):
        assert "None" not in body


@pytest.mark.parametrize("locale", LOCALES)
def test_history_sms_holds_every_entry_whole_with_its_date_label_and_the_status(
    shipped: Templates, tmp_path: Path, locale: str
) -> None:
    """One part of the history by SMS (the gateway splits it, see test_consumer_messages):
    every entry in order, its date, time and label, its text whole, never "..."."""
    context = sample(shipped, "protocol_history")
    context["history"][1] = {**context["history"][1], "text": LONG.strip()}
    sms = shipped.render("protocol_history", "sms", locale, context)
    lines = plain(sms.text).split("\n")
    assert NUMBER in lines[0] and "parte" not in lines[0] and "part " not in lines[0]  # 1 of 1 says nothing
    status = {"pt-BR": "Estado: reaberto", "es": "Estado: reabierta", "en": "Status: reopened", "ca": "Estat: reoberta",
              "eu": "Egoera: berriro irekita", "gl": "Estado: reaberta"}[locale]
    assert status in lines[0], lines[0]
    positions = []
    for entry, label in zip(context["history"], LABELS[locale]):
        when, _ = formatted(tmp_path, locale, context["timezone"], entry["occurred_at"], short=True)
        line = next(line for line in lines if line.startswith(f"{when} {label}"))
        positions.append(lines.index(line))
        if entry.get("text"):
            assert line.endswith(entry["text"]), line
    assert positions == sorted(positions) and "..." not in sms.text


@pytest.mark.parametrize("locale", LOCALES)
def test_history_sms_part_after_the_first_names_the_protocol_and_its_place(shipped: Templates, locale: str) -> None:
    context = {**sample(shipped, "protocol_history"), "part": 2, "parts": 3}
    context["history"][1] = {**context["history"][1], "continued": True}
    sms = plain(shipped.render("protocol_history", "sms", locale, {**context, "history": context["history"][1:2]}).text)
    first = sms.split("\n")[0]
    place = {"pt-BR": "(parte 2 de 3)", "es": "(parte 2 de 3)", "en": "(part 2 of 3)", "ca": "(part 2 de 3)",
             "eu": "(zatia: 2/3)", "gl": "(parte 2 de 3)"}[locale]
    assert NUMBER in first and place in first and "Acme Telecom" in first, first
    assert context["history"][1]["text"] in sms and context["history"][2]["text"] not in sms
    cont = {"pt-BR": "(cont.)", "es": "(cont.)", "en": "(cont.)", "ca": "(cont.)", "eu": "(jarraipena)", "gl": "(cont.)"}[locale]
    assert cont in sms


@pytest.mark.parametrize("locale", LOCALES)
def test_inbound_reply_without_protocols_says_so_and_how_to_get_help(shipped: Templates, locale: str) -> None:
    context = {**sample(shipped, "inbound_reply"), "protocols": [], "window_days": 45}
    sms = shipped.render("inbound_reply", "sms", locale, context)
    assert "45" in sms.text and "sac@acme.example" in sms.text and "Acme Telecom" in sms.text
    assert numbers_in(sms.text) == set()
    assert HISTORY_KEYWORD[locale] not in sms.text


@pytest.mark.parametrize("locale", LOCALES)
def test_inbound_reply_lists_exactly_the_phone_protocols(shipped: Templates, tmp_path: Path, locale: str) -> None:
    base = sample(shipped, "inbound_reply")
    protocols = [*base["protocols"], {**base["protocols"][0], "number": "2026120100000452", "subject": LONG}]
    sms = shipped.render("inbound_reply", "sms", locale, {**base, "protocols": protocols})
    assert numbers_in(sms.text) == {p["number"] for p in protocols}
    lines = plain(sms.text).split("\n")
    for protocol in protocols:
        _, day = formatted(tmp_path, locale, base["timezone"], protocol["opened_at"])
        line = next(line for line in lines if line.startswith(protocol["number"]))
        assert day in line and len(line) <= 90, line
    assert "Cobrança Cobrança" in sms.text and LONG.strip() not in sms.text  # the subject is shortened
    assert HISTORY_KEYWORD[locale] in sms.text and "90" in sms.text


@pytest.mark.parametrize("locale", LOCALES)
def test_inbound_reply_with_one_protocol_names_the_history_command(shipped: Templates, locale: str) -> None:
    base = sample(shipped, "inbound_reply")
    sms = shipped.render("inbound_reply", "sms", locale, {**base, "protocols": base["protocols"][:1]})
    assert f"{HISTORY_KEYWORD[locale]} {NUMBER}" in sms.text
    assert numbers_in(sms.text) == {NUMBER}


def hostile(context: dict[str, Any]) -> dict[str, Any]:
    context = {**context, "consumer": {"name": "<b>Maria</b>"}}
    if "protocol" in context:
        context["protocol"] = {**context["protocol"], "subject": HOSTILE}
    if "event" in context:
        context["event"] = {key: HOSTILE if key in ("message", "resolution", "reason") else value
                            for key, value in context["event"].items()}
    if "history" in context:
        context["history"] = [{**entry, "text": HOSTILE} for entry in context["history"]]
    if "protocols" in context:
        context["protocols"] = [{**p, "subject": HOSTILE} for p in context["protocols"]]
    return context


@pytest.mark.parametrize(("name", "channel", "locale"), CASES)
def test_consumer_text_is_data(shipped: Templates, name: str, channel: str, locale: str) -> None:
    context = hostile(sample(shipped, name))
    rendered = shipped.render(name, channel, locale, context)  # type: ignore[arg-type]
    assert HOSTILE in rendered.text  # plain text and SMS are not HTML: shown as written, never evaluated
    if channel == "email":
        assert rendered.html is not None and rendered.subject is not None
        assert "{{ 7*7 }} &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
        assert "&lt;b&gt;Maria&lt;/b&gt;" in rendered.html
        assert "<script>" not in rendered.html and "49" not in rendered.html
        assert "7*7" not in rendered.subject and "<" not in rendered.subject  # consumer text is never a header


@pytest.mark.parametrize("name", EMAIL_AND_SMS)
def test_no_name_and_a_long_subject(shipped: Templates, name: str) -> None:
    context = sample(shipped, name)
    context = {**context, "consumer": {"name": None}, "protocol": {**context["protocol"], "subject": LONG}}
    email = shipped.render(name, "email", "pt-BR", context)
    assert email.text.startswith("Olá.\n") and "None" not in email.text and "None" not in (email.html or "")
    assert LONG.strip() in email.text  # the email shows everything
    sms = shipped.render(name, "sms", "pt-BR", context)
    assert NUMBER in sms.text and "22/11/2026" in sms.text
    if name == "protocol_history":
        assert LONG.strip() in sms.text  # the record is whole, split over parts by the gateway
    else:
        assert LONG.strip() not in sms.text


@pytest.mark.parametrize("name", ["protocol_updated", "protocol_history"])
def test_deadline_is_shown_only_while_an_answer_is_due(shipped: Templates, name: str) -> None:
    context = sample(shipped, name)
    due = {"protocol_updated": "29/11/2026 23:59 (horário de Brasília)",
           "protocol_history": "09/12/2026 23:59 (horário de Brasília)"}[name]
    assert due in shipped.render(name, "email", "pt-BR", context).text
    answered = {**context, "protocol": {**context["protocol"], "status": "resolved"}}
    email = shipped.render(name, "email", "pt-BR", answered)
    assert due not in email.text and due not in (email.html or "")


def test_resolved_says_how_to_reopen_and_get_the_history(shipped: Templates) -> None:
    """By email: how to ask for a reopening and for the history, each way only where it works
    (tests/test_consumer_messages.py renders the combinations)."""
    context = sample(shipped, "protocol_resolved")
    for locale, reopen, reply in (("pt-BR", "reabertura", "responda a este e-mail"),
                                  ("es", "reabramos", "responda a este correo"), ("en", "reopen", "reply to this email"),
                                  ("ca", "reobrim", "responeu aquest correu"), ("gl", "reabramos", "responda a este correo"),
                                  ("eu", "berriro irekitzeko", "erantzun mezu honi")):
        email = shipped.render("protocol_resolved", "email", locale, context)
        for body in map(plain, (email.text, email.html or "")):
            assert reopen in body and reply in body and f"{NUMBER}" in body and "+55 11 4000-4000" in body, body
        nowhere = {**context, "ask": {"sms_number": None, "reply": False, "email": "sac@acme.example", "website": None}}
        for body in map(plain, (shipped.render("protocol_resolved", "email", locale, nowhere).text,)):
            assert reopen in body and "sac@acme.example" in body and reply not in body and "+55" not in body


def test_reopened_gives_the_new_deadline(shipped: Templates) -> None:
    context = sample(shipped, "protocol_reopened")
    email = shipped.render("protocol_reopened", "email", "pt-BR", context)
    sms = shipped.render("protocol_reopened", "sms", "pt-BR", context)
    assert "Nova resposta até: 09/12/2026 23:59 (horário de Brasília)" in email.text
    assert "Reaberto em: 02/12/2026 09:10 (horário de Brasília)" in email.text
    assert "Nova resposta até 09/12/2026" in sms.text


@pytest.mark.parametrize(("name", "field"), [("protocol_updated", "message"), ("protocol_resolved", "resolution"),
                                             ("protocol_reopened", "reason")])
def test_sms_shows_the_consumer_text_on_one_line_and_ends_its_sentence_once(shipped: Templates, name: str, field: str) -> None:
    context = sample(shipped, name)
    for text, shown in (("Sem ponto final", ": Sem ponto final."), ("Com ponto.", ": Com ponto."),
                        ("Várias\n\nlinhas  aqui!", ": Várias linhas aqui!"), (LONG, " Cobrança...")):
        sms = shipped.render(name, "sms", "pt-BR", {**context, "event": {**context["event"], field: text}})
        assert shown in sms.text and ".." not in sms.text.replace("...", "") and "\n" not in sms.text, (text, sms.text)


@pytest.mark.parametrize("name", ["overdue_alert", "deadline_warning", "confirmation_overdue"])
def test_operations_emails_name_the_status_in_their_own_language(shipped: Templates, name: str) -> None:
    context = sample(shipped, name)
    for status, shown in (("open", {"pt-BR": "Situação: em aberto", "es": "Estado: en curso", "en": "Status: open"}),
                          ("reopened", {"pt-BR": "Situação: reaberto", "es": "Estado: reabierta", "en": "Status: reopened"})):
        for locale, line in shown.items():
            email = shipped.render(name, "email", locale, {**context, "protocol": {**context["protocol"], "status": status}})
            assert line in email.text, (locale, email.text)
            assert line.split(": ")[1] in (email.html or "")
