"""syllables and word_tokenize."""

from __future__ import annotations

import pytest

from assistant.text import syllables, word_tokenize
from assistant.text import tokens as tokens_module


class TestSyllables:
    def test_splits_on_spaces_punctuation_and_digits(self) -> None:
        assert syllables("Em bị, người-ta doạ!! 5k") == ["Em", "bị", "người", "ta", "doạ", "k"]

    def test_lower_option(self) -> None:
        assert syllables("TÔI Muốn", lower=True) == ["tôi", "muốn"]

    def test_no_diacritics_and_teen_code(self) -> None:
        assert syllables("e ko bit lm j") == ["e", "ko", "bit", "lm", "j"]

    def test_empty_and_symbols_only(self) -> None:
        assert syllables("") == []
        assert syllables("123 ?! 😭") == []

    def test_decomposed_input_is_one_syllable(self) -> None:
        import unicodedata

        assert syllables(unicodedata.normalize("NFD", "người")) == ["người"]


class TestWordTokenize:
    @pytest.mark.slow
    def test_groups_compound_words(self) -> None:
        words = word_tokenize("Tôi muốn đổi mật khẩu tài khoản Facebook.")
        assert "mật khẩu" in words
        assert "tài khoản" in words
        assert words[-1] == "."

    def test_empty_text(self) -> None:
        assert word_tokenize("   ") == []

    def test_falls_back_to_syllables_without_underthesea(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tokens_module, "_tokenizer", None)
        monkeypatch.setattr(tokens_module, "_tokenizer_missing", True)
        assert word_tokenize("mật khẩu, tài khoản") == ["mật", "khẩu", "tài", "khoản"]
