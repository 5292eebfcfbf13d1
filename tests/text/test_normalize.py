"""nfc, tone-mark placement, accent folding, diacritic detection."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.text import fold_accents, has_diacritics, nfc, normalize_tone_marks
from assistant.text.normalize import is_vietnamese_syllable

_FOLD_ALPHABET = list(
    "aăâeêioôơuưyđĐ AĂÂÊÔƠƯ\u0301\u0300\u0309\u0303\u0323\u0306\u0302\u031bÅçñœﬁ①²한\u1100\u1161\u11a8"
)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


class TestNfc:
    def test_decomposed_input_is_composed(self) -> None:
        assert nfc(nfd("Tiếng Việt")) == "Tiếng Việt"
        assert unicodedata.is_normalized("NFC", nfc(nfd("người")))

    def test_whitespace_is_collapsed_and_stripped(self) -> None:
        assert nfc("  em \t bị   doạ \u00a0 ") == "em bị doạ"

    def test_line_breaks_are_kept_as_one_newline(self) -> None:
        assert nfc("chào\r\n\r\n  bạn") == "chào\nbạn"

    def test_zero_width_and_control_characters_are_removed(self) -> None:
        assert nfc("k\u200bo\u200c b\u200diết\ufeff\x07") == "ko biết"

    def test_plain_text_is_unchanged(self) -> None:
        assert nfc("em bi nguoi ta doa") == "em bi nguoi ta doa"
        assert nfc("") == ""


class TestToneMarks:
    @pytest.mark.parametrize(
        ("new_style", "old_style"),
        [
            ("hòa", "hoà"),
            ("thúy", "thuý"),
            ("khỏe", "khoẻ"),
            ("thủy", "thuỷ"),
            ("ủy ban", "uỷ ban"),
            ("hóa học", "hoá học"),
            ("dọa", "doạ"),
            ("Biên Hòa", "Biên Hoà"),
        ],
    )
    def test_new_style_becomes_old_style(self, new_style: str, old_style: str) -> None:
        assert normalize_tone_marks(new_style) == old_style

    @pytest.mark.parametrize("word", ["hoà", "thuý", "khoẻ", "thuỷ", "doạ"])
    def test_old_style_is_kept(self, word: str) -> None:
        assert normalize_tone_marks(word) == word

    @pytest.mark.parametrize(
        "word",
        [
            "quả",
            "quý",
            "già",
            "gìn",
            "giữa",
            "người",
            "của",
            "mía",
            "hoàng",
            "toán",
            "thuở",
            "khuỷu",
            "ngoài",
            "rượu",
            "quyền",
            "thuyết",
            "mưa",
            "em",
            "không",
        ],
    )
    def test_unambiguous_syllables_are_unchanged(self, word: str) -> None:
        assert normalize_tone_marks(word) == word

    def test_misplaced_marks_are_moved(self) -> None:
        assert normalize_tone_marks("ngòai") == "ngoài"
        assert normalize_tone_marks("qúa") == "quá"
        assert normalize_tone_marks("hóan") == "hoán"

    def test_upper_case_is_handled(self) -> None:
        assert normalize_tone_marks("HÒA BÌNH") == "HOÀ BÌNH"
        assert normalize_tone_marks("Thủy") == "Thuỷ"

    def test_decomposed_input_is_handled(self) -> None:
        assert normalize_tone_marks(nfd("hòa thuận")) == "hoà thuận"
        assert normalize_tone_marks(nfd("hoà")) == "hoà"

    def test_both_styles_meet(self) -> None:
        assert normalize_tone_marks("Chúc khỏe, hòa thuận") == normalize_tone_marks("Chúc khoẻ, hoà thuận")

    def test_idempotent(self) -> None:
        text = "Ủy ban nhân dân thành phố Biên Hòa khỏe mạnh"
        once = normalize_tone_marks(text)
        assert normalize_tone_marks(once) == once

    def test_non_vietnamese_tokens_are_untouched(self) -> None:
        assert normalize_tone_marks("café naïve zalo 5k") == "café naïve zalo 5k"


class TestFoldAccents:
    def test_removes_all_diacritics_and_keeps_case(self) -> None:
        assert fold_accents("Đồng Nai, ĐƯỜNG phố") == "Dong Nai, DUONG pho"
        assert fold_accents("người lạ doạ") == "nguoi la doa"

    def test_decomposed_input(self) -> None:
        assert fold_accents(nfd("Tiếng Việt")) == "Tieng Viet"

    def test_plain_text_is_unchanged(self) -> None:
        assert fold_accents("em bi nguoi ta doa 123 !?") == "em bi nguoi ta doa 123 !?"

    def test_length_is_preserved(self) -> None:
        text = "Thuỷ đừng sợ, hãy gọi 111."
        assert len(fold_accents(text)) == len(text)

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet=st.sampled_from(_FOLD_ALPHABET), max_size=16) | st.text(max_size=16))
    def test_equals_decompose_strip_compose(self, text: str) -> None:
        """The translate table is exactly the textbook definition, on any text (NFD input,
        stray combining marks, Hangul jamo that compose, ...)."""
        decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
        stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        assert fold_accents(text) == unicodedata.normalize("NFC", stripped)


class TestHasDiacritics:
    @pytest.mark.parametrize("text", ["đi", "Ă", "em bị", nfd("hoà"), "ĐỒNG"])
    def test_positive(self, text: str) -> None:
        assert has_diacritics(text)

    @pytest.mark.parametrize("text", ["", "di hoc", "e ko bit", "123 ?!", "Dong Nai"])
    def test_negative(self, text: str) -> None:
        assert not has_diacritics(text)


def test_vietnamese_syllable_shape() -> None:
    assert all(is_vietnamese_syllable(w) for w in ["nguyễn", "khuya", "giường", "nghiêng", "quốc", "em"])
    assert not any(is_vietnamese_syllable(w) for w in ["facebook", "zalo", "ok", "wa", "5k", "stk"])
