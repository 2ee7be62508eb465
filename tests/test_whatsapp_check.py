"""`templates check` and previews on WhatsApp: the variables map to fields with values, the approved
text kept beside the SID agrees with whatsapp.j2, Meta's lengths; a reminder by WhatsApp carries its
approved template; the settings of WhatsApp stop start-up in one line when incomplete."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import PACKAGE_DIR, ConfigError, load_settings
from gateway.rendering.check import check_templates
from gateway.rendering.preview import preview
from gateway.rendering.templates import Templates

NAME = "protocol_opened"
SID = "HX" + "0123456789abcdef" * 2


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE_DIR / "templates" / NAME, tmp_path / NAME)
    shutil.copytree(PACKAGE_DIR / "templates" / "_partials", tmp_path / "_partials")
    return tmp_path


def add_to_manifest(folder: Path, text: str) -> None:
    with open(folder / NAME / "template.toml", "a", encoding="utf-8") as f:
        f.write("\n" + text + "\n")


def findings(folder: Path, level: str = "error") -> list[str]:
    report = check_templates(Templates(folder, "pt-BR", sms_transliterate=True), max_segments=3, names=[NAME])
    return [f.text() for f in report.findings if f.level == level and f.channel == "whatsapp"]


def approval(folder: Path, locale: str = "pt-BR") -> str:
    out = preview(Templates(folder, "pt-BR"), NAME, locale=locale, channel="whatsapp", max_segments=3)
    return out["whatsapp"]["approval_text"]


def test_the_shipped_text_passes_and_says_which_locales_have_no_content_sid(folder: Path) -> None:
    assert findings(folder) == []
    infos = findings(folder, "info")
    assert len(infos) == 6 and all("no content_sid for this locale" in line for line in infos)
    report = check_templates(Templates(folder, "pt-BR"), max_segments=3, names=[NAME])
    pt = next(w for w in report.whatsapp if w.locale == "pt-BR")
    assert pt.kind == "template" and pt.limit == 1024 and pt.content_sid is None
    assert "{{1}}" in pt.approval_text and "2026112200000017" not in pt.approval_text


def test_an_approved_text_that_agrees_passes_and_one_that_differs_is_an_error(folder: Path) -> None:
    text = approval(folder)
    add_to_manifest(folder, f'[whatsapp.content_sid]\npt-BR = "{SID}"\n[whatsapp.approved]\npt-BR = """{text}"""')
    assert findings(folder) == []
    assert not any("pt-BR" in line for line in findings(folder, "info"))  # it has its SID now

    (folder / NAME / "template.toml").write_text(
        (folder / NAME / "template.toml").read_text("utf-8").replace("Guarde o número", "Anote o número"), "utf-8")
    error, *_ = findings(folder)
    assert error.startswith(f"{NAME}/template.toml: error: [whatsapp] approved.pt-BR filled with the sample's ")
    assert "'Anote o número" in error and "'Guarde o número" in error


def test_a_variable_that_maps_to_no_field_or_an_empty_one_is_an_error(folder: Path) -> None:
    toml = folder / NAME / "template.toml"
    toml.write_text(toml.read_text("utf-8").replace('"3" = "protocol.subject"', '"3" = "protocol.subjetc"'), "utf-8")
    assert findings(folder) == [
        f'{NAME}/template.toml: error: [whatsapp] variables "3": protocol.subjetc is not a field of the context',
        f'{NAME}/template.toml: error: [whatsapp] variables "3": protocol.subjetc is not a field of the context '
        "(with [samples.long_subject])"]

    toml.write_text(toml.read_text("utf-8").replace('"3" = "protocol.subjetc"', '"3" = "protocol.category"')
                    .replace('category = "billing"', 'category = ""'), "utf-8")
    assert any('[whatsapp] variables "3" (protocol.category) is empty' in e for e in findings(folder))


def test_a_text_above_what_whatsapp_takes_is_an_error(folder: Path) -> None:
    body = folder / NAME / "pt-BR" / "whatsapp.j2"
    body.write_text(body.read_text("utf-8").replace("Olá!", "Olá! " + "Muito obrigado. " * 70), "utf-8")
    assert any(e.startswith(f"{NAME}/pt-BR/whatsapp.j2: error: ") and "WhatsApp takes at most 1,024" in e
               for e in findings(folder))


def test_a_bad_whatsapp_table_names_the_key(folder: Path) -> None:
    add_to_manifest(folder, '[whatsapp.content_sid]\npt-BR = "MG123"')
    [error] = [f.text() for f in check_templates(Templates(folder, "pt-BR"), max_segments=3, names=[NAME]).findings
               if f.level == "error"]
    assert error == (f"{NAME}/template.toml: error: [whatsapp] content_sid pt-BR: expected a Content SID "
                     "(HX and 32 hex digits)")


def test_the_preview_gives_the_variables_and_the_body_to_submit(folder: Path) -> None:
    out = preview(Templates(folder, "pt-BR"), NAME, channel="whatsapp", max_segments=3)
    wa = out["whatsapp"]
    assert out["sms"] is None and out["email"] is None
    assert wa["kind"] == "template" and wa["characters"] == len(wa["text"]) and wa["limit"] == 1024
    assert wa["variables"]["1"] == "2026112200000017"
    filled = wa["approval_text"]
    for key, value in wa["variables"].items():
        filled = filled.replace(f"{{{{{key}}}}}", value)
    assert filled == wa["text"]


# Settings


def test_whatsapp_through_twilio_takes_the_sms_account_unless_it_gives_its_own() -> None:
    settings = load_settings(environ={}, discover=False, overrides={
        "sms": {"twilio": {"account_sid": "AC" + "1" * 32, "auth_token": "sms-token", "from": "+15005550006"}},
        "whatsapp": {"transport": "twilio", "twilio": [
            {"name": "main", "from": "whatsapp:+5511940000000"},
            {"name": "other", "from": "whatsapp:+5511950000000", "account_sid": "AC" + "2" * 32, "auth_token": "t2"},
        ]},
    })
    main, other = settings.whatsapp_accounts
    assert (main.name, main.account_sid, main.auth_token.get_secret_value()) == ("main", "AC" + "1" * 32, "sms-token")
    assert (other.account_sid, other.auth_token.get_secret_value()) == ("AC" + "2" * 32, "t2")
    assert settings.inbound_whatsapp is True


@pytest.mark.parametrize(("whatsapp", "message"), [
    ({"transport": "twilio"}, "settings: whatsapp.twilio.account_sid: required when whatsapp.transport is 'twilio' "
                              "(or set sms.twilio.account_sid) [defaults]"),
    ({"twilio": {"from": "+5511940000000"}}, "settings: whatsapp.twilio.from: String should match pattern "
                                             "'^whatsapp:\\+[1-9][0-9]{6,14}$' (got '+5511940000000') [defaults]"),
])
def test_incomplete_whatsapp_settings_stop_start_up_in_one_line(whatsapp: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, discover=False, overrides={"whatsapp": whatsapp})
    assert str(caught.value) == message


def test_a_chain_that_names_a_channel_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"fallback\.chains\.protocol_opened: each channel at most once"):
        load_settings(environ={}, discover=False,
                      overrides={"fallback": {"chains": {"protocol_opened": ["sms", "email", "sms"]}}})




def test_a_message_with_a_variable_left_empty_cannot_go_as_the_template(folder: Path) -> None:
    add_to_manifest(folder, f'[whatsapp.content_sid]\npt-BR = "{SID}"')
    templates = Templates(folder, "pt-BR")
    sample = templates.manifest(NAME).sample
    for page, sid in (({"url": "https://sac.acme.example/p/x"}, SID), ({"url": None}, None)):
        context = {**sample, "page": page}
        rendered = templates.render(NAME, "whatsapp", "pt-BR", context)
        assert templates.whatsapp_content(rendered, "pt-BR", context)["content_sid"] == sid
