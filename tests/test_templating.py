import logging
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

import gateway
from gateway.rendering.dates import gmt_offset
from gateway.rendering.numbers import grouped
from gateway.rendering.page_link import render_consumer
from gateway.rendering.templates import TemplateError, TemplateNotFoundError, Templates, content_hash

SHIPPED = Path(gateway.__file__).parent / "templates"
NUMBER = "2026112200000017"


@pytest.fixture(scope="module")
def shipped() -> Templates:
    return Templates(SHIPPED, "pt-BR")


@pytest.fixture(scope="module")
def sample(shipped: Templates) -> dict[str, Any]:
    return dict(shipped.manifest("protocol_opened").sample)


def write(folder: Path, files: dict[str, str]) -> Templates:
    """A templates folder with the given files (paths relative to it)."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for manifest in {Path(name).parts[0] for name in files if not name.startswith("_")}:
        (folder / manifest / "template.toml").write_text('audience = "consumer"\n')
    return Templates(folder, "pt-BR")


def with_subject(sample: dict[str, Any], subject: str) -> dict[str, Any]:
    return {**sample, "protocol": {**sample["protocol"], "subject": subject}}


def touch(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime on: some file systems keep one-second mtimes."""
    mtime = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime + 2_000_000_000, mtime + 2_000_000_000))


# What each shipped locale must show: opened (date, time, zone) by email and by SMS (the zone's
# shorter name), the deadline, the greeting, and how to get the history. Brazil's official time
# is named as consumers read it in every notice, "horário de Brasília", never "BRT".
EXPECTED = {
    "pt-BR": ("22/11/2026 11:43 (horário de Brasília)", "22/11/2026 11:43 (Brasilia)",
              "29/11/2026 23:59 (horário de Brasília)", "Olá, Maria Silva", "histórico completo"),
    "es": ("22/11/2026, 11:43 (hora de Brasilia)", "22/11/2026, 11:43 (Brasilia)",
           "29/11/2026, 23:59 (hora de Brasilia)", "Hola, Maria Silva", "historial completo"),
    "en": ("Nov 22, 2026, 11:43\u202fAM (Brasília time)", "Nov 22, 2026, 11:43 AM (Brasilia)",
           "Nov 29, 2026, 11:59\u202fPM (Brasília time)", "Hello, Maria Silva", "full history"),
    # Spain's co-official languages (Ley 10/2025); Basque writes the year first.
    "ca": ("22/11/2026 11:43 (hora de Brasília)", "22/11/2026 11:43 (Brasilia)",
           "29/11/2026 23:59 (hora de Brasília)", "Hola, Maria Silva", "historial complet"),
    "eu": ("2026/11/22 11:43 (Brasiliako ordua)", "2026/11/22 11:43 (Brasilia)",
           "2026/11/29 23:59 (Brasiliako ordua)", "Kaixo, Maria Silva", "historia osoa"),
    "gl": ("22/11/2026, 11:43 (hora de Brasilia)", "22/11/2026, 11:43 (Brasilia)",
           "29/11/2026, 23:59 (hora de Brasilia)", "Ola, Maria Silva", "historial completo"),
}


def test_manifest_of_the_shipped_template(shipped: Templates) -> None:
    manifest = shipped.manifest("protocol_opened")
    assert "protocol_opened" in shipped.names()
    assert shipped.locales("protocol_opened") == ["ca", "en", "es", "eu", "gl", "pt-BR"]
    assert manifest.audience == "consumer"
    assert manifest.sample["protocol"]["opened_at"] == datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
    assert "protocol.deadline_at|datetime" in manifest.required_fields["email"]
    long = manifest.samples["long_subject"]  # merged over [sample]
    assert len(long["protocol"]["subject"]) > 100 and long["protocol"]["number"] == NUMBER


@pytest.mark.parametrize("locale", EXPECTED)
def test_email_shows_number_opening_subject_deadline_and_history(shipped: Templates, sample: dict[str, Any], locale: str) -> None:
    opened, _, deadline, greeting, keyword = EXPECTED[locale]
    email = shipped.render("protocol_opened", "email", locale, sample)
    assert email.locale == locale and email.channel == "email" and email.sms is None
    assert email.subject is not None and NUMBER in email.subject
    assert email.html is not None
    for body in (email.text, email.html):
        for shown in (opened, "Cobrança indevida na fatura de outubro", deadline, greeting, keyword, "Acme Telecom"):
            assert shown in body, (locale, shown)
    # Alone on its line and grouped to be read aloud ("2026 1122 0000 0017"); in HTML the groups
    # are set apart by margins, so that copying gives the digits alone.
    assert f"\n{grouped(NUMBER)}\n" in email.text
    assert "white-space:nowrap" in email.html and NUMBER in re.sub(r"<[^>]+>", "", email.html)


@pytest.mark.parametrize("locale", EXPECTED)
def test_sms_shows_number_opening_and_subject_with_accents_in_two_segments(
        shipped: Templates, sample: dict[str, Any], locale: str) -> None:
    _, opened, _, _, _ = EXPECTED[locale]
    sms = render_consumer(shipped, "protocol_opened", "sms", locale, sample)  # as sent: no room for the link
    assert sms.subject is None and sms.html is None and sms.sms is not None
    for shown in (NUMBER, opened, "Cobrança indevida na fatura de outubro"):
        assert shown in sms.text, (locale, shown)
    assert "\n" not in sms.text and "\u202f" not in sms.text  # Babel's narrow space would cost UCS-2 alone
    assert not sms.transliterated
    assert (sms.sms.encoding, sms.sms.segments) == ("UCS-2", 2)  # the consumer's "ç", not the template's words
    assert sms.sms_transliterated is not None and (sms.sms_transliterated.encoding, sms.sms_transliterated.segments) == ("GSM-7", 1)


@pytest.mark.parametrize("locale", EXPECTED)
def test_sms_transliterated_by_setting_fits_one_gsm7_segment(sample: dict[str, Any], locale: str) -> None:
    templates = Templates(SHIPPED, "pt-BR", sms_transliterate=True)
    sms = render_consumer(templates, "protocol_opened", "sms", locale, sample)
    assert "Cobranca indevida na fatura de outubro" in sms.text and NUMBER in sms.text
    assert sms.transliterated and sms.sms is not None and (sms.sms.encoding, sms.sms.segments) == ("GSM-7", 1)
    assert sms.sms_written is not None and sms.sms_written.encoding == "UCS-2"
    # Same files, same hash: the setting changes the text, not the template.
    assert sms.hash == Templates(SHIPPED, "pt-BR").render("protocol_opened", "sms", locale, sample).hash


@pytest.mark.parametrize("locale", EXPECTED)
def test_sms_template_words_are_gsm7_so_plain_data_stays_gsm7(shipped: Templates, sample: dict[str, Any],
                                                              locale: str) -> None:
    sms = render_consumer(shipped, "protocol_opened", "sms", locale, with_subject(sample, "Internet lenta a noite"))
    assert sms.sms is not None and (sms.sms.encoding, sms.sms.segments) == ("GSM-7", 1)


def test_greeting_without_a_name(shipped: Templates, sample: dict[str, Any]) -> None:
    email = shipped.render("protocol_opened", "email", "pt-BR", {**sample, "consumer": {"name": None}})
    assert email.text.startswith("Olá.\n")
    assert "None" not in email.text and "None" not in (email.html or "")


def test_long_subject_is_truncated_in_sms_but_not_the_number_or_date(shipped: Templates, sample: dict[str, Any]) -> None:
    sms = render_consumer(shipped, "protocol_opened", "sms", "pt-BR", with_subject(sample, "Cobrança " * 60))
    assert NUMBER in sms.text and "22/11/2026 11:43 (Brasilia)" in sms.text
    assert "Assunto: Cobrança Cobrança Cobrança Cobrança..." in sms.text  # 40 characters, cut between words
    assert sms.sms is not None and sms.sms.segments == 2


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [("pt-BR", "pt-BR"), ("es-ES", "es"), ("es_MX", "es"), ("fr", "pt-BR"), ("pt-br", "pt-BR"), ("EN", "en"), ("en-GB", "en"), ("pt-PT", "pt-BR"), ("pt", "pt-BR"),
     ("ca", "ca"), ("ca-ES", "ca"), ("ca_ES", "ca"), ("ca-ES-valencia", "ca"), ("eu-ES", "eu"), ("gl-ES", "gl"), ("GL", "gl")],
)
def test_locale_fallback(shipped: Templates, asked: str, resolved: str) -> None:
    assert shipped.resolve_locale("protocol_opened", asked) == resolved


def test_dates_follow_the_requested_locale_when_the_text_is_in_its_language(shipped: Templates, sample: dict[str, Any]) -> None:
    mexico = shipped.render("protocol_opened", "email", "es-MX", sample)
    assert mexico.locale == "es" and "11:43\u202fa.m." in mexico.text
    french = shipped.render("protocol_opened", "email", "fr", sample)
    assert french.locale == "pt-BR" and "22/11/2026 11:43 (horário de Brasília)" in french.text


@pytest.mark.parametrize(
    ("locale", "zone", "shown"),
    [
        ("pt-BR", "America/Sao_Paulo", "22/11/2026 11:43 (horário de Brasília)"),
        ("en", "America/New_York", "Nov 22, 2026, 9:43\u202fAM (EST)"),
        ("es", "Europe/Madrid", "22/11/2026, 15:43 (CET)"),
        # Where CLDR has no abbreviation, the offset, written the same way in every locale
        # whatever the Babel release (2.19 turned CLDR's pt-BR form into "-05:00 GMT").
        ("pt-BR", "America/Bogota", "22/11/2026 09:43 (GMT-05:00)"),
        ("es", "America/Bogota", "22/11/2026, 9:43 (GMT-05:00)"),
        ("pt-BR", "Asia/Kolkata", "22/11/2026 20:13 (GMT+05:30)"),
        ("en", "Asia/Kathmandu", "Nov 22, 2026, 8:28\u202fPM (GMT+05:45)"),
    ],
)
def test_datetime_filter_always_shows_the_zone(tmp_path: Path, locale: str, zone: str, shown: str) -> None:
    templates = write(tmp_path, {f"t/{locale}/sms.j2": "{{ protocol.opened_at|datetime }}|{{ protocol.opened_at|time }}"})
    context = {"timezone": zone, "protocol": {"opened_at": datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)}}
    both, time = templates.render("t", "sms", locale, context).text.split("|")
    assert both == shown.replace("\u202f", " ")  # SMS get plain spaces
    assert time.endswith(shown[-6:]) and time in shown.replace(", ", " ").replace("\u202f", " ")  # the same time, with its zone


def test_macros_imported_without_context_read_the_render_that_calls_them(tmp_path: Path) -> None:
    # Such a module is built once and shared by every render (what the shipped ask.j2 relies on
    # to be cheap): its macros' lists and dates must still follow each render's locale and zone,
    # and a name they are not passed reads the calling render's, as `with context` would.
    templates = write(tmp_path, {
        "_parts/say.j2": "{% macro ways(a, b, at) %}{{ [a, b]|or_list }} {{ at|datetime('short') }} "
                         "{{ company.name }}{% endmacro %}",
        "t/pt-BR/sms.j2": '{% import "_parts/say.j2" as say %}{{ say.ways("x", "y", at) }}',
        "t/en/sms.j2": '{% import "_parts/say.j2" as say %}{{ say.ways("x", "y", at) }}',
    })
    at = datetime(2026, 11, 22, 14, 43, tzinfo=timezone.utc)
    shown = [templates.render("t", "sms", locale, {"timezone": zone, "at": at, "company": {"name": name}}).text
             for locale, zone, name in (("pt-BR", "America/Sao_Paulo", "Loja"), ("en", "Europe/Madrid", "Shop"),
                                        ("pt-BR", "UTC", "Outra"))]
    assert shown == ["x ou y 22/11/2026 11:43 (Brasilia) Loja", "x or y Nov 22, 2026, 3:43 PM (GMT+01:00) Shop",
                     "x ou y 22/11/2026 14:43 (UTC) Outra"]
    with pytest.raises(TemplateError) as caught:  # a name no render has is still an error, where it is used
        templates.render("t", "sms", "pt-BR", {"timezone": "UTC", "at": at})
    assert (caught.value.file, caught.value.variable) == ("_parts/say.j2", "company")


def test_a_module_shared_between_renders_never_keeps_one_consumers_data(tmp_path: Path) -> None:
    # Imported without context, a file's module is built once and kept: its top level must not
    # read the render that happens to build it, or the next consumer would get the first one's
    # name. Macros read each render's own; a top level that reads a render's names is an error.
    templates = write(tmp_path, {
        "_parts/hi.j2": "{% macro hi() %}Olá {{ consumer.name }}{% endmacro %}",
        "_parts/kept.j2": "{% set hello = 'Olá ' ~ consumer.name %}{% macro hi() %}{{ hello }}{% endmacro %}",
        "t/pt-BR/sms.j2": '{% import "_parts/hi.j2" as say %}{{ say.hi() }}',
        "u/pt-BR/sms.j2": '{% import "_parts/kept.j2" as say %}{{ say.hi() }}',
    })
    shown = [templates.render("t", "sms", "pt-BR", {"consumer": {"name": name}}).text for name in ("Maria", "João")]
    assert shown == ["Olá Maria", "Olá João"]
    for name in ("Maria", "João"):
        with pytest.raises(TemplateError) as caught:
            templates.render("u", "sms", "pt-BR", {"consumer": {"name": name}})
        assert (caught.value.file, caught.value.variable) == ("_parts/kept.j2", "consumer")


def test_shipped_templates_import_the_ask_sentences_once_per_file(shipped: Templates, sample: dict[str, Any]) -> None:
    # `with context` would build the module again on every render (13 % of rendering an opening by email and SMS).
    importing = [p for p in SHIPPED.rglob("*.j2") if "_partials/" in p.read_text(encoding="utf-8")
                 and "import" in p.read_text(encoding="utf-8")]
    assert importing and not [p for p in importing if "with context" in p.read_text(encoding="utf-8")]
    first = shipped.render("protocol_opened", "email", "pt-BR", sample).text
    assert first == shipped.render("protocol_opened", "email", "pt-BR", sample).text and "histórico completo" in first


def test_a_dict_key_reads_as_an_attribute_but_never_shadows_a_method(tmp_path: Path) -> None:
    # The sandbox reads a plain dict's keys without trying the attribute first: the same answers.
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ d.number }} {{ d.items()|list|length }} {{ d.get('number') }}"})
    assert templates.render("t", "sms", "pt-BR", {"d": {"number": "17", "items": "x", "get": "y"}}).text == "17 3 17"
    with pytest.raises(TemplateError, match="unsafe|update"):
        write(tmp_path, {"t/pt-BR/sms.j2": "{{ d.update({'number': 1}) }}"}).render("t", "sms", "pt-BR", {"d": {}})


def test_naive_datetime_is_an_error(tmp_path: Path) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "Prazo:\n{{ at|date }}"})
    with pytest.raises(TemplateError, match="naive") as caught:
        templates.render("t", "sms", "pt-BR", {"timezone": "UTC", "at": datetime(2026, 11, 22)})
    assert (caught.value.file, caught.value.line) == ("t/pt-BR/sms.j2", 2)


def test_jinjas_own_globals_reach_every_file(tmp_path: Path) -> None:
    # Each file's globals are a dict of its own over Jinja's (sandbox.make_globals), not a ChainMap.
    templates = write(tmp_path, {
        "t/pt-BR/sms.j2": "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
                          "{{ ns.n }}{% include '_partials/x.j2' %}",
        "_partials/x.j2": " {{ range(2)|list|length }}",
    })
    assert templates.render("t", "sms", "pt-BR", {}).text == "3 2"


def test_macros_escape_as_jinja_has_them_across_html_and_text_files(tmp_path: Path) -> None:
    # The caller's autoescaping decides whether a macro's output is safe HTML (Jinja passes the
    # macro its evaluation context); the sandbox's shortcut for macro calls must keep that. Pinned
    # as Jinja has it, hazard included: a text file's macro called from HTML comes out unescaped,
    # so such macros (the shipped ask.j2) must only carry settings and the number, never what a
    # consumer or an upstream system wrote.
    templates = write(tmp_path, {
        "t/pt-BR/email.subject.j2": "s",
        "t/pt-BR/email.txt.j2": "{% import '_p/say.j2' as say %}{{ say.it(x) }}",
        "t/pt-BR/email.html.j2": "{% import '_p/say.j2' as say %}{% import '_p/ui.html.j2' as ui %}"
                                 "{{ say.it(x) }}|{{ ui.para(say.it(x)) }}|{{ ui.para(x) }}|{{ ui.para(y) }}",
        "_p/say.j2": "{% macro it(v) %}l'{{ v }}{% endmacro %}",
        "_p/ui.html.j2": "{% macro para(t) %}<i>{{ t }}</i>{% endmacro %}",
    })
    rendered = templates.render("t", "email", "pt-BR", {"x": "a&b", "y": "it's <b>"})
    assert rendered.text == "l'a&b\n"
    assert rendered.html == "l'a&b|<i>l'a&b</i>|<i>a&amp;b</i>|<i>it&#39;s &lt;b&gt;</i>"


def test_unknown_template_or_missing_file(tmp_path: Path, shipped: Templates) -> None:
    with pytest.raises(TemplateNotFoundError):
        shipped.resolve_locale("no_such_template", "pt-BR")
    with pytest.raises(TemplateNotFoundError):
        shipped.render("../templates", "sms", "pt-BR", {})
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "only sms"})
    with pytest.raises(TemplateNotFoundError, match="t/pt-BR/email.subject.j2"):
        templates.render("t", "email", "pt-BR", {})


def test_undefined_variable_names_file_line_and_dotted_variable(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"broken/pt-BR/sms.j2": "Protocolo\n{{ protocol.number }}\naberto {{ protocol.numbr }}\n"})
    with pytest.raises(TemplateError) as caught:
        templates.render("broken", "sms", "pt-BR", sample)
    error = caught.value
    assert (error.file, error.line, error.variable) == ("broken/pt-BR/sms.j2", 3, "protocol.numbr")
    assert str(error) == "broken/pt-BR/sms.j2:3: undefined variable 'protocol.numbr'"


def test_undefined_top_level_variable(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"broken/pt-BR/sms.j2": "{% if consumer.name %}\n{{ costumer.name }}\n{% endif %}"})
    with pytest.raises(TemplateError) as caught:
        templates.render("broken", "sms", "pt-BR", sample)
    assert (caught.value.line, caught.value.variable) == (2, "costumer")


def test_undefined_variable_in_an_included_file_points_at_that_file(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(
        tmp_path,
        {"broken/pt-BR/sms.j2": "{% include '_parts/footer.j2' %}", "_parts/footer.j2": "\n\n{{ company['nome'] }}"},
    )
    with pytest.raises(TemplateError) as caught:
        templates.render("broken", "sms", "pt-BR", sample)
    assert (caught.value.file, caught.value.line, caught.value.variable) == ("_parts/footer.j2", 3, "company.nome")


def test_syntax_error_names_file_and_line(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"broken/pt-BR/sms.j2": "Protocolo\n{{ protocol.number }\n"})
    with pytest.raises(TemplateError) as caught:
        templates.render("broken", "sms", "pt-BR", sample)
    error = caught.value
    assert (error.file, error.line, error.variable) == ("broken/pt-BR/sms.j2", 2, None)
    assert str(error).startswith("broken/pt-BR/sms.j2:2: ") and "\n" not in str(error)


@pytest.mark.parametrize(
    "expression",
    ["''.__class__.__mro__", "protocol.__class__.__subclasses__()", "protocol.update({'number': 1})", "(1).__class__.__base__"],
)
def test_sandbox_refuses_unsafe_access(tmp_path: Path, sample: dict[str, Any], expression: str) -> None:
    templates = write(tmp_path, {"evil/pt-BR/sms.j2": f"{{{{ {expression} }}}}"})
    with pytest.raises(TemplateError) as caught:
        templates.render("evil", "sms", "pt-BR", sample)
    assert isinstance(caught.value.__cause__, SecurityError)
    assert (caught.value.file, caught.value.line) == ("evil/pt-BR/sms.j2", 1)


def test_consumer_text_is_data_escaped_in_html_only(shipped: Templates, sample: dict[str, Any]) -> None:
    hostile = with_subject(sample, "{{ 7*7 }} <script>alert(1)</script>")
    hostile["consumer"] = {"name": "<b>Maria</b>"}
    email = shipped.render("protocol_opened", "email", "pt-BR", hostile)
    assert email.html is not None
    assert "{{ 7*7 }} &lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "&lt;b&gt;Maria&lt;/b&gt;" in email.html
    assert "<script>" not in email.html and "49" not in email.html
    assert "{{ 7*7 }} <script>alert(1)</script>" in email.text  # plain text is not HTML


def test_email_subject_is_one_header_line(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(
        tmp_path,
        {
            "t/pt-BR/email.subject.j2": "\n  Protocolo {{ protocol.number }}:\r\n{{ protocol.subject }}\n",
            "t/pt-BR/email.txt.j2": "texto",
            "t/pt-BR/email.html.j2": "<p>html</p>",
        },
    )
    email = templates.render("t", "email", "pt-BR", with_subject(sample, "a\r\nBcc: x@example.com"))
    assert email.subject == f"Protocolo {NUMBER}: a Bcc: x@example.com"


def test_hash_proves_the_files_used(shipped: Templates, sample: dict[str, Any]) -> None:
    email = shipped.render("protocol_opened", "email", "pt-BR", sample)
    sms = shipped.render("protocol_opened", "sms", "pt-BR", sample)
    assert email.hash.startswith("sha256:") and email.hash != sms.hash
    files = ("email.subject.j2", "email.txt.j2", "email.html.j2")
    on_disk = {f"protocol_opened/pt-BR/{f}": (SHIPPED / "protocol_opened" / "pt-BR" / f).read_bytes() for f in files}
    # and every partial they pull in: a change to the layout is a change to the message
    for partial in ("_partials/layout.html.j2", "_partials/blocks.html.j2", "_partials/pt-BR/ask.j2"):
        on_disk[partial] = (SHIPPED / partial).read_bytes()
    assert email.hash == content_hash(on_disk)
    assert shipped.render("protocol_opened", "email", "es-ES", sample).hash == shipped.render("protocol_opened", "email", "es", sample).hash
    assert shipped.render("protocol_opened", "email", "es", sample).hash != email.hash


def test_hash_changes_with_any_file_used_including_includes(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }}{% include '_parts/end.j2' %}", "_parts/end.j2": "."})
    first = templates.render("t", "sms", "pt-BR", sample).hash
    assert first == content_hash({"t/pt-BR/sms.j2": b"{{ protocol.number }}{% include '_parts/end.j2' %}", "_parts/end.j2": b"."})
    touch(tmp_path / "_parts" / "end.j2", "!")
    assert templates.render("t", "sms", "pt-BR", sample).hash != first


def test_edits_are_picked_up_by_the_next_render(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "antes {{ protocol.number }}"})
    before = templates.render("t", "sms", "pt-BR", sample)
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "depois {{ protocol.number }}")
    after = templates.render("t", "sms", "pt-BR", sample)
    assert (before.text, after.text) == (f"antes {NUMBER}", f"depois {NUMBER}")
    assert before.hash != after.hash


def test_dynamic_include_is_refused_because_the_hash_could_not_cover_it(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{% include protocol.number %}"})
    with pytest.raises(TemplateError, match="fixed template"):
        templates.render("t", "sms", "pt-BR", sample)


def test_a_file_that_is_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"t/pt-BR/sms.j2": ""})
    (tmp_path / "t" / "pt-BR" / "sms.j2").write_bytes("linha 1\nCobran\u00e7a".encode("latin-1"))
    with pytest.raises(TemplateError) as caught:
        Templates(tmp_path, "pt-BR").render("t", "sms", "pt-BR", {})
    assert str(caught.value) == "t/pt-BR/sms.j2:2: the file is not UTF-8"


# Hot reload: a broken edit is not served; the last good version is, until the file is fixed.


def test_one_look_renders_a_block_from_the_files_as_they_were_at_its_first_look(tmp_path: Path) -> None:
    templates = write(tmp_path, {
        "t/pt-BR/sms.j2": "sms {% include '_partials/x.j2' %}",
        "t/pt-BR/email.subject.j2": "assunto {% include '_partials/x.j2' %}",
        "t/pt-BR/email.txt.j2": "texto", "t/pt-BR/email.html.j2": "<p>html</p>",
        "_partials/x.j2": "v1",
    })
    with templates.one_look():
        first = templates.render("t", "sms", "pt-BR", {})
        touch(tmp_path / "_partials" / "x.j2", "v2")
        touch(tmp_path / "t" / "pt-BR" / "sms.j2", "novo {% include '_partials/x.j2' %}")
        with templates.one_look():  # inside another: part of it
            email = templates.render("t", "email", "pt-BR", {})
        again = templates.render("t", "sms", "pt-BR", {})
        assert Templates(tmp_path, "pt-BR").render("t", "sms", "pt-BR", {}).text == "novo v2"  # another's look
    assert (first.text, email.subject, again.text, again.hash) == ("sms v1", "assunto v1", "sms v1", first.hash)
    after = templates.render("t", "sms", "pt-BR", {})
    assert (after.text, templates.render("t", "email", "pt-BR", {}).subject) == ("novo v2", "assunto v2")
    assert after.hash != first.hash


def test_one_look_keeps_a_file_broken_at_its_look_broken_for_the_whole_block(tmp_path: Path) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "quebrado {{ x }"})
    with templates.one_look():
        for fixed in (False, True):
            with pytest.raises(TemplateError, match="t/pt-BR/sms.j2"):
                templates.render("t", "sms", "pt-BR", {"x": 1}, fallback=False)
            if not fixed:
                touch(tmp_path / "t" / "pt-BR" / "sms.j2", "bom {{ x }}")
    assert templates.render("t", "sms", "pt-BR", {"x": 1}).text == "bom 1"


def test_a_file_broken_at_the_look_raises_with_a_traceback_of_its_own_each_time(tmp_path: Path) -> None:
    """A shared commit renders up to 64 events in one look: the error a broken file left there
    must not gather every render's frames, nor be one object for all of them."""
    def depth(exc: BaseException | None) -> int:
        tb, n = exc.__traceback__ if exc is not None else None, 0
        while tb is not None:
            tb, n = tb.tb_next, n + 1
        return n

    templates = write(tmp_path, {"t/pt-BR/sms.j2": "quebrado {{ x }"})
    errors, depths = [], []
    with templates.one_look():
        for _ in range(20):
            with pytest.raises(TemplateError) as caught:
                templates.render("t", "sms", "pt-BR", {"x": 1}, fallback=False)
            errors.append(caught.value)
            depths.append(depth(caught.value.__cause__))  # Jinja's error, kept by the look
    assert len({id(e) for e in errors}) == 20
    assert depths[0] > 0 and set(depths[1:]) == {depths[1]}, depths  # its frames do not pile up


def test_one_look_sees_a_locale_added_meanwhile_only_after_the_block(tmp_path: Path) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "pt"})
    with templates.one_look():
        assert templates.locales("t") == ["pt-BR"]
        (tmp_path / "t" / "es").mkdir()
        (tmp_path / "t" / "es" / "sms.j2").write_text("es")
        os.utime(tmp_path / "t", ns=(1, 1))
        assert templates.locales("t") == ["pt-BR"]
        with pytest.raises(TemplateNotFoundError):
            templates.render("u", "sms", "pt-BR", {})
    assert templates.locales("t") == ["es", "pt-BR"]


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == "template_fallback"]


def test_a_broken_edit_keeps_the_last_good_version_serving(tmp_path: Path, sample: dict[str, Any],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "bom {{ protocol.number }}"})
    good = templates.render("t", "sms", "pt-BR", sample)
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "quebrado\n{{ protocol.number }\n")
    with caplog.at_level(logging.WARNING, logger="gateway.rendering.templates"):
        served = templates.render("t", "sms", "pt-BR", sample)
        again = templates.render("t", "sms", "pt-BR", sample)
    assert (served.text, served.hash, served.fallback) == (f"bom {NUMBER}", good.hash, True)
    assert again.fallback and len(fallbacks(caplog)) == 1  # said once, not at every message
    record = fallbacks(caplog)[0]
    assert (record.file, record.line, record.template, record.locale, record.channel) == (
        "t/pt-BR/sms.j2", 2, "t", "pt-BR", "sms")
    with pytest.raises(TemplateError) as caught:  # previews and checks see the error itself
        templates.render("t", "sms", "pt-BR", sample, fallback=False)
    assert caught.value.line == 2
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "novo {{ protocol.number }}")
    fixed = templates.render("t", "sms", "pt-BR", sample)
    assert (fixed.text, fixed.fallback) == (f"novo {NUMBER}", False) and fixed.hash != good.hash


def test_an_edit_with_an_undefined_variable_falls_back_too(tmp_path: Path, sample: dict[str, Any],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }}"})
    templates.render("t", "sms", "pt-BR", sample)
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "{{ protocol.numero }}")
    with caplog.at_level(logging.WARNING, logger="gateway.rendering.templates"):
        served = templates.render("t", "sms", "pt-BR", sample)
    assert served.text == NUMBER and served.fallback
    assert fallbacks(caplog)[0].variable == "protocol.numero"


def test_a_broken_include_falls_back_to_the_included_file_it_was_rendered_with(
        tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }}{% include '_parts/end.j2' %}",
                                 "_parts/end.j2": " fim"})
    good = templates.render("t", "sms", "pt-BR", sample)
    touch(tmp_path / "_parts" / "end.j2", "{% if %}")
    served = templates.render("t", "sms", "pt-BR", sample)
    assert (served.text, served.hash, served.fallback) == (f"{NUMBER} fim", good.hash, True)


def test_without_a_good_version_the_error_is_raised(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }"})
    with pytest.raises(TemplateError):
        templates.render("t", "sms", "pt-BR", sample)


def test_data_that_the_good_version_cannot_render_either_is_not_hidden(tmp_path: Path, sample: dict[str, Any]) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }}"})
    templates.render("t", "sms", "pt-BR", sample)
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "{{ protocol.number }")
    with pytest.raises(TemplateError) as caught:
        templates.render("t", "sms", "pt-BR", {"timezone": "UTC"})  # no protocol at all
    assert caught.value.line == 1 and "unexpected" in caught.value.message  # the files' error, not the data's


def test_warm_renders_the_samples_so_an_edit_after_start_up_falls_back(tmp_path: Path) -> None:
    templates = write(tmp_path, {"t/pt-BR/sms.j2": "{{ protocol.number }}"})
    (tmp_path / "t" / "template.toml").write_text(
        'audience = "consumer"\n[sample]\ntimezone = "UTC"\n[sample.protocol]\nnumber = "123456"\n')
    assert templates.warm() == []
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "{{ protocol.number }")
    served = templates.render("t", "sms", "pt-BR", {"protocol": {"number": "999999"}, "timezone": "UTC"})
    assert served.text == "999999" and served.fallback


def test_reload_off_reads_each_file_once(tmp_path: Path, sample: dict[str, Any]) -> None:
    write(tmp_path, {"t/pt-BR/sms.j2": "antes"})
    templates = Templates(tmp_path, "pt-BR", auto_reload=False)
    assert templates.render("t", "sms", "pt-BR", sample).text == "antes"
    touch(tmp_path / "t" / "pt-BR" / "sms.j2", "depois")
    assert templates.render("t", "sms", "pt-BR", sample).text == "antes"


@pytest.mark.parametrize(("minutes", "label"), [(0, "GMT"), (-180, "GMT-03:00"), (330, "GMT+05:30"), (-570, "GMT-09:30"),
                                               (840, "GMT+14:00")])
def test_gmt_offset_is_ours_not_cldrs(minutes: int, label: str) -> None:
    assert gmt_offset(timedelta(minutes=minutes)) == label
