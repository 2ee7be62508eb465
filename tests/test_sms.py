import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from gateway.rendering.sms import (
    _SPACES,
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PART,
    GSM7_SINGLE,
    UCS2_PART,
    UCS2_SINGLE,
    SmsInfo,
    _gsm7_char,
    clean_spaces,
    is_gsm7,
    sms_info,
    transliterate_gsm7,
)


def _texts(alphabet: st.SearchStrategy[str] | list[str]) -> st.SearchStrategy[str]:
    # Draw the length first, so messages past one segment are as likely as short ones.
    return st.integers(0, 500).flatmap(lambda n: st.text(alphabet=alphabet, min_size=n, max_size=n))


GSM_BASIC_TEXT = _texts(sorted(GSM7_BASIC))
GSM_TEXT = _texts(sorted(GSM7_BASIC | GSM7_EXTENSION))
UCS2_TEXT = _texts(st.characters(exclude_categories=("Cs",))).map(lambda s: "ç" + s)


def test_gsm7_single_and_concatenated_boundaries() -> None:
    assert sms_info("a" * 160) == SmsInfo("GSM-7", 160, 1)
    assert sms_info("a" * 161) == SmsInfo("GSM-7", 161, 2)
    assert sms_info("a" * 306) == SmsInfo("GSM-7", 306, 2)
    assert sms_info("a" * 307) == SmsInfo("GSM-7", 307, 3)


def test_ucs2_single_and_concatenated_boundaries() -> None:
    assert sms_info("ç" * 70) == SmsInfo("UCS-2", 70, 1)
    assert sms_info("ç" * 71) == SmsInfo("UCS-2", 71, 2)
    assert sms_info("ç" * 134) == SmsInfo("UCS-2", 134, 2)
    assert sms_info("ç" * 135) == SmsInfo("UCS-2", 135, 3)


def test_extension_characters_cost_two_septets() -> None:
    assert sms_info("€" * 80) == SmsInfo("GSM-7", 160, 1)
    assert sms_info("€" * 81) == SmsInfo("GSM-7", 162, 2)
    for char in "^{}\\[~]|€\f":
        assert sms_info(char).units == 2


def test_escape_pair_is_never_split_between_parts() -> None:
    # 152 septets then "€": the pair cannot end part one, so it starts part two.
    assert sms_info("a" * 152 + "€" + "a" * 152).segments == 3
    assert sms_info("a" * 151 + "€" + "a" * 153).segments == 2


def test_emoji_counts_two_units_and_is_not_split() -> None:
    assert sms_info("😀") == SmsInfo("UCS-2", 2, 1)
    assert sms_info("😀" * 35) == SmsInfo("UCS-2", 70, 1)
    assert sms_info("a" * 66 + "😀" + "a" * 66) == SmsInfo("UCS-2", 134, 3)


def test_empty_message_is_billed_as_one_segment() -> None:
    assert sms_info("") == SmsInfo("GSM-7", 0, 1)


def test_lower_c_cedilla_forces_ucs2_but_capital_does_not() -> None:
    assert sms_info("ç").encoding == "UCS-2"
    assert sms_info("Ç").encoding == "GSM-7"
    assert sms_info("Cobrança").encoding == "UCS-2"


def test_transliteration_makes_portuguese_gsm7() -> None:
    assert transliterate_gsm7("Cobrança não paga") == "Cobranca nao paga"
    assert sms_info(transliterate_gsm7("Cobrança não paga")).encoding == "GSM-7"
    assert transliterate_gsm7("Ação, ônibus, você, lâmpada, índice, único, água") == (
        "Acao, onibus, voce, lampada, indice, unico, agua"
    )


def test_transliteration_keeps_letters_the_gsm_table_has() -> None:
    kept = "éèùìòÇàñüöäÑÜÖÄÅåÆæßÉØø"
    assert transliterate_gsm7(kept) == kept


def test_transliteration_of_typography_and_decomposed_text() -> None:
    assert transliterate_gsm7("“Olá” — ‘sim’… 1º\u00a0lugar") == "\"Ola\" - 'sim'... 1o lugar"
    assert transliterate_gsm7("cafe\u0301 ac\u0327u\u0301car") == "café acucar"  # NFD input
    assert transliterate_gsm7("11:43\u202fAM") == "11:43 AM"  # Babel's narrow no-break space


def test_transliteration_leaves_what_has_no_latin_fallback() -> None:
    assert transliterate_gsm7("ok 😀 東京") == "ok 😀 東京"
    assert sms_info(transliterate_gsm7("ok 😀")).encoding == "UCS-2"


@given(GSM_TEXT)
def test_transliteration_is_identity_on_gsm7(text: str) -> None:
    assert transliterate_gsm7(text) == text


@given(st.text())
def test_transliteration_is_idempotent(text: str) -> None:
    once = transliterate_gsm7(text)
    assert transliterate_gsm7(once) == once


@given(GSM_TEXT, GSM_TEXT)
def test_gsm7_segments_monotonic_in_length(text: str, more: str) -> None:
    assert sms_info(text).segments <= sms_info(text + more).segments


@given(UCS2_TEXT, st.text())
def test_ucs2_segments_monotonic_in_length(text: str, more: str) -> None:
    assert sms_info(text).segments <= sms_info(text + more).segments


@given(GSM_BASIC_TEXT)
def test_basic_gsm7_segments_follow_the_formula(text: str) -> None:
    info = sms_info(text)
    assert is_gsm7(text) and info.units == len(text)
    assert info.segments == (1 if len(text) <= 160 else -(-len(text) // 153))


def test_extension_characters_at_the_single_message_boundary() -> None:
    assert sms_info("a" * 158 + "€") == SmsInfo("GSM-7", 160, 1)
    assert sms_info("a" * 159 + "€") == SmsInfo("GSM-7", 161, 2)
    assert sms_info("a" * 159 + "{") == SmsInfo("GSM-7", 161, 2)


def test_one_emoji_turns_gsm7_text_into_ucs2() -> None:
    assert sms_info("a" * 68 + "😀") == SmsInfo("UCS-2", 70, 1)
    assert sms_info("a" * 69 + "😀") == SmsInfo("UCS-2", 71, 2)
    assert sms_info("a" * 159 + "😀").segments == 3  # 161 units at 67 per part


def test_clean_spaces_turns_every_space_into_a_gsm7_space_and_keeps_letters() -> None:
    assert clean_spaces("11:43\u202fAM\u00a0(BRT)\tok\u200b") == "11:43 AM (BRT) ok"
    assert clean_spaces("Cobrança não") == "Cobrança não"
    assert sms_info(clean_spaces("Nov 22, 2026, 11:43\u202fAM")).encoding == "GSM-7"


def test_the_space_separators_written_out_are_unicodes_own():
    """clean_spaces replaces the space separators listed in sms.py: the list is every code point of
    category Zs in this Python's Unicode database (but the space itself)."""
    import sys
    import unicodedata

    from gateway.rendering.sms import SPACE_SEPARATORS

    found = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"} - {" "}
    assert set(SPACE_SEPARATORS) == found


# The definitions, a character at a time: the module counts and transliterates in C (set
# operations, a regex, an encoding), and must give exactly what these give.
def _packed(costs: list[int], single: int, part: int) -> int:
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count


def _info_by_character(text: str) -> SmsInfo:
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsInfo("GSM-7", sum(costs), _packed(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsInfo("UCS-2", sum(costs), _packed(costs, UCS2_SINGLE, UCS2_PART))


MIXED = _texts(st.one_of(st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), st.sampled_from("çãõ😀€\ud800"),
                         st.characters()))


@given(st.one_of(MIXED, GSM_TEXT, UCS2_TEXT, GSM_BASIC_TEXT))
def test_counts_are_the_character_by_character_definition(text: str) -> None:
    assert sms_info(text) == _info_by_character(text)


@given(st.one_of(MIXED, st.text()))
def test_transliteration_is_the_character_by_character_definition(text: str) -> None:
    text = unicodedata.normalize("NFC", text)
    assert transliterate_gsm7(text) == "".join(_gsm7_char(c) for c in text)


def test_a_lone_surrogate_counts_one_unit() -> None:
    # JSON may carry one ("\\ud800"): it is counted, not an error.
    assert sms_info("ç\ud800") == SmsInfo("UCS-2", 2, 1)
    assert sms_info("ç" * 70 + "\ud800") == SmsInfo("UCS-2", 71, 2)


@given(st.one_of(MIXED, st.text(alphabet=st.sampled_from("ab \t\u00a0\u202f\u200b\ufeff\u3000ç"))))
def test_clean_spaces_is_the_translation_table(text: str) -> None:
    assert clean_spaces(text) == text.translate(_SPACES)
