"""writing_style and normalize()."""

from __future__ import annotations

import pytest

from assistant.text import AccentRestorer, NormalizedText, normalize, writing_style


class TestWritingStyle:
    @pytest.mark.parametrize(
        "text",
        ["Em bị người ta doạ", "cho em hỏi", "Anh ta gửi quà cho em", "Chào bạn!"],
    )
    def test_diacritics(self, text: str) -> None:
        assert writing_style(text) == "diacritics"

    @pytest.mark.parametrize(
        "text",
        ["em bi nguoi ta doa", "toi muon doi mat khau", "em bi nguoi ta doạ", "", "😭😭"],
    )
    def test_no_diacritics(self, text: str) -> None:
        assert writing_style(text) == "no_diacritics"

    @pytest.mark.parametrize(
        "text",
        ["e ko bit lm j", "mik dc r", "ko", "Em hông bít, ng ta doạ em quá trời, hix"],
    )
    def test_teencode(self, text: str) -> None:
        assert writing_style(text) == "teencode"

    def test_one_teen_token_in_a_long_message_is_not_teencode(self) -> None:
        assert writing_style("Hôm nay em đi học về thì thấy có tin nhắn lạ, ko biết của ai") == "diacritics"


class TestNormalizeWithoutRestorer:
    def test_fields(self) -> None:
        result = normalize("  E ko bit  lm j, thuỷ hòa  ")
        assert isinstance(result, NormalizedText)
        assert result.original == "  E ko bit  lm j, thuỷ hòa  "
        assert result.clean == "E ko bit lm j, thuỷ hoà"
        assert result.expanded == "Em không biết làm gì, thuỷ hoà"
        assert result.restored == result.expanded
        assert result.folded == "em khong biet lam gi, thuy hoa"
        assert result.style == "teencode"

    def test_style_is_writing_style(self) -> None:
        texts = {
            "Em bị người lạ đe doạ.": "diacritics",
            "toi muon doi mat khau": "no_diacritics",
            "e ko bit lm j": "teencode",
            "Hôm nay em đi học về thì thấy có tin nhắn lạ, ko biết của ai": "diacritics",
        }
        for text, style in texts.items():
            assert normalize(text).style == writing_style(text) == style

    def test_plain_vietnamese_passes_through(self) -> None:
        text = "Em bị người lạ đe doạ."
        result = normalize(text)
        assert result.clean == result.expanded == result.restored == text
        assert result.style == "diacritics"


@pytest.mark.slow
class TestNormalizeWithRestorer:
    def test_teen_code_without_diacritics(self, restorer: AccentRestorer) -> None:
        result = normalize("e bi ng ta doa", restorer)
        assert result.expanded == "em bi người ta doa"
        assert result.restored == "em bị người ta doạ"
        assert result.folded == "em bi nguoi ta doa"
        assert result.style == "teencode"

    def test_no_diacritics(self, restorer: AccentRestorer) -> None:
        result = normalize("toi muon doi mat khau", restorer)
        assert result.restored == "tôi muốn đổi mật khẩu"
        assert result.style == "no_diacritics"

    def test_text_with_diacritics_is_not_restored(self, restorer: AccentRestorer) -> None:
        text = "Anh ta gửi quà cho em"
        assert normalize(text, restorer).restored == text

    def test_restored_text_uses_canonical_tone_marks(self, restorer: AccentRestorer) -> None:
        assert "hoà" in normalize("hoa binh, hòa", restorer).restored
