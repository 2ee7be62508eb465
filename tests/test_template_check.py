"""`protocol-gateway templates check`: what it finds, how it says it, and its exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import gateway
from gateway.cli import main
from gateway.rendering.check import Report, check_templates
from gateway.rendering.templates import Templates

SHIPPED = Path(gateway.__file__).parent / "templates"
NAME = "protocol_opened"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped protocol_opened template to break."""
    target = tmp_path / "templates"
    shutil.copytree(SHIPPED / NAME, target / NAME)
    shutil.copytree(SHIPPED / "_partials", target / "_partials")  # the pieces its messages share
    return target


def check(folder: Path, *, max_segments: int = 3, transliterate: bool = False) -> Report:
    return check_templates(Templates(folder, "pt-BR", sms_transliterate=transliterate), max_segments=max_segments)


def lines(report: Report, level: str = "error") -> list[str]:
    return [f.text() for f in report.findings if f.level == level]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), "utf-8")


@pytest.mark.parametrize("transliterate", [False, True])
def test_the_shipped_template_passes_and_reports_both_sms_counts(transliterate: bool) -> None:
    report = check_templates(Templates(SHIPPED, "pt-BR", sms_transliterate=transliterate), max_segments=3,
                             names=[NAME])
    assert lines(report) == [] and lines(report, "warning") == []
    assert report.exit_code(strict=True) == 0
    # 6 locales x 3 channels (email, SMS, WhatsApp) x (2 samples + 7 combinations of the ways to ask
    # for the history: all, none, and each of the five alone)
    assert (report.templates, report.locales, report.renders) == (1, 6, 162)
    sms = {s.locale: s for s in report.sms}
    assert set(sms) == {"pt-BR", "es", "en", "ca", "eu", "gl"}
    pt = sms["pt-BR"]
    assert (pt.written.encoding, pt.written.segments) == ("UCS-2", 2)
    assert (pt.transliterated.encoding, pt.transliterated.segments) == ("GSM-7", 1)
    assert pt.sent == (pt.transliterated if transliterate else pt.written)
    info = next(line for line in lines(report, "info") if line.startswith(f"{NAME}/pt-BR/sms.j2"))
    expected = ("sent transliterated: GSM-7, 1 segment (129 septets); as written: UCS-2, 2 segments" if transliterate
                else "UCS-2, 2 segments (129 UTF-16 units); transliterated (sms.transliterate = true): GSM-7, 1 segment")
    assert expected in info


def test_a_syntax_error_is_reported_with_file_and_line(folder: Path) -> None:
    (folder / NAME / "es" / "sms.j2").write_text("Hola\n{{ protocol.number }\n", "utf-8")
    report = check(folder)
    assert lines(report)[0].startswith(f"{NAME}/es/sms.j2:2: error: unexpected '}}'")
    assert report.exit_code() == 1


def test_an_undefined_variable_is_reported_with_file_line_and_variable(folder: Path) -> None:
    edit(folder / NAME / "en" / "email.txt.j2", "Subject: {{ protocol.subject }}", "Subject: {{ protocol.subjet }}")
    report = check(folder)
    found = [f for f in report.findings if f.level == "error"]
    assert found[0].text() == f"{NAME}/en/email.txt.j2:10: error: undefined variable 'protocol.subjet'"
    assert (found[0].variable, found[0].locale, found[0].channel) == ("protocol.subjet", "en", "email")


def test_an_email_without_the_protocol_number_is_refused(folder: Path) -> None:
    edit(folder / NAME / "pt-BR" / "email.txt.j2", "{{ protocol.number|grouped }}", "(see the subject)")
    edit(folder / NAME / "pt-BR" / "email.html.j2", "{{ ui.number(protocol.number) }}", "(see the subject)")
    edit(folder / NAME / "pt-BR" / "email.html.j2", "Protocolo {{ protocol.number }}", "Protocolo")
    # and no inbound SMS, whose sentence ("envie 2026... por SMS") would show the number
    edit(folder / NAME / "template.toml", 'sms_number = "+55 11 4000-4000"', "sms_number = false")
    report = check(folder)
    assert lines(report) == [
        f"{NAME}/pt-BR/email.txt.j2: error: does not show protocol.number: expected '2026112200000017'",
        f"{NAME}/pt-BR/email.html.j2: error: does not show protocol.number: expected '2026112200000017'",
    ]
    assert report.exit_code() == 1


def test_an_sms_without_the_time_and_zone_is_refused(folder: Path) -> None:
    edit(folder / NAME / "pt-BR" / "sms.j2", '{{ protocol.opened_at|datetime("short") }}', "{{ protocol.opened_at|date }}")
    assert lines(check(folder)) == [f"{NAME}/pt-BR/sms.j2: error: does not show protocol.opened_at as datetime: "
                                    "expected '22/11/2026 11:43 (horário de Brasília)'"]


def test_the_consumer_floor_applies_even_when_template_toml_does_not_list_it(folder: Path) -> None:
    edit(folder / NAME / "template.toml", '"protocol.deadline_at|datetime"]', ']')
    edit(folder / NAME / "en" / "email.txt.j2", "Answer due by: {{ protocol.deadline_at|datetime }}", "")
    assert lines(check(folder)) == [
        f"{NAME}/en/email.txt.j2: error: does not show protocol.deadline_at as date: expected 'Nov 29, 2026'"]


def test_a_floor_field_can_be_waived_with_a_reason(folder: Path) -> None:
    edit(folder / NAME / "template.toml", '"protocol.deadline_at|datetime"]', ']')
    edit(folder / NAME / "template.toml", "[sample]\n", '[waive]\n"protocol.deadline_at" = "answered already"\n\n[sample]\n')
    edit(folder / NAME / "en" / "email.txt.j2", "Answer due by: {{ protocol.deadline_at|datetime }}", "")
    report = check(folder)
    assert lines(report) == []
    assert f"{NAME}/template.toml: info: waives protocol.deadline_at: answered already" in lines(report, "info")


def test_a_value_shown_transformed_can_be_required_with_any(folder: Path) -> None:
    edit(folder / NAME / "template.toml", 'sms = ["protocol.number"', 'sms = ["protocol.status|any", "protocol.number"')
    assert any("does not show protocol.status: the output is the same" in line for line in lines(check(folder)))
    edit(folder / NAME / "pt-BR" / "sms.j2", "Assunto:", "{{ {'open': 'Em aberto'}.get(protocol.status, '?') }}. Assunto:")
    assert [line for line in lines(check(folder)) if "pt-BR" in line] == []


def test_a_locale_missing_a_file_another_locale_has_fails(folder: Path) -> None:
    (folder / NAME / "en" / "email.html.j2").unlink()
    (folder / NAME / "es" / "sms.j2").unlink()
    assert lines(check(folder)) == [f"{NAME}/en/email.html.j2: error: missing: ca, es, eu, gl, pt-BR have it",
                                    f"{NAME}/es/sms.j2: error: missing: ca, en, eu, gl, pt-BR have it"]


def test_a_required_field_missing_from_the_sample_is_an_error(folder: Path) -> None:
    edit(folder / NAME / "template.toml", 'sms = ["protocol.number"', 'sms = ["protocol.prazo", "protocol.number"')
    assert f"{NAME}/template.toml: error: required field 'protocol.prazo' is not in [sample]: add a realistic " \
           "value to check it against" in lines(check(folder))


def test_segments_above_the_limit_warn_and_strict_makes_them_fail(folder: Path) -> None:
    report = check(folder, max_segments=1)
    warnings = lines(report, "warning")
    assert f"{NAME}/pt-BR/sms.j2: warning: 2 segments for sample 'sample', above sms.max_segments (1): shorten " \
           "the text or set sms.transliterate = true" in warnings
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    assert "FAILED" in report.summary(strict=True) and "ok" in report.summary()
    assert lines(check(folder, max_segments=1, transliterate=True), "warning") == []


def test_the_longest_sample_is_the_one_reported(folder: Path) -> None:
    edit(folder / NAME / "pt-BR" / "sms.j2", '|truncate(40, leeway=0) %}', " %}")
    sms = next(s for s in check(folder).sms if s.locale == "pt-BR")
    assert sms.sample == "long_subject" and sms.sent.segments == 4


def test_cli_output_summary_and_exit_codes(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["templates", "check", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "templates check: ok: 1 template, 6 locales, 162 renders: 0 errors, 0 warnings"
    assert all(": info: " in line for line in out[:-1])

    monkeypatch.setenv("GATEWAY_SMS__MAX_SEGMENTS", "1")  # the opening SMS takes 2 as written
    monkeypatch.setenv("GATEWAY_SMS__TRANSLITERATE", "false")
    assert main(["templates", "check", "--dir", str(folder), "-q"]) == 0
    assert main(["templates", "check", "--dir", str(folder), "--strict", "-q"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("templates check: FAILED") and out[-1].endswith("(strict: warnings fail)")
    assert not any(": info: " in line for line in out)

    (folder / NAME / "en" / "sms.j2").write_text("{{ nope }}", "utf-8")
    assert main(["templates", "check", "--dir", str(folder), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["summary"]["errors"] >= 1
    first = next(f for f in document["findings"] if f["level"] == "error")
    assert (first["file"], first["line"], first["variable"]) == (f"{NAME}/en/sms.j2", 1, "nope")
    assert {s["locale"] for s in document["sms"]} == {"pt-BR", "es", "ca", "eu", "gl"}  # en does not render

    assert main(["templates", "check", "--dir", str(tmp_path / "nowhere")]) == 2
    assert main(["templates", "check", "--dir", str(folder), "no_such_template"]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["templates", "check", "--bogus"])
    assert usage.value.code == 2
    monkeypatch.setenv("GATEWAY_SMS__MAX_SEGMENTS", "lots")
    assert main(["templates", "check", "--dir", str(folder)]) == 2


def test_all_shipped_templates_render(capsys: pytest.CaptureFixture[str]) -> None:
    """Every shipped template renders with its samples in every locale (no syntax or undefined
    variable): whatever else the check finds is for each template's owner to settle."""
    report = check_templates(Templates(SHIPPED, "pt-BR"), max_segments=3)
    broken = [f.text() for f in report.findings if f.level == "error" and (f.line or "missing" in f.message)]
    assert broken == []
