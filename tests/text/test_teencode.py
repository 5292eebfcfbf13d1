"""The teen-code dictionary and its context rules."""

from __future__ import annotations

import unicodedata
from importlib import resources

import pytest

from assistant.text import expand_teencode, load_teencode, normalize_tone_marks
from assistant.text.accents import default_lexicon
from assistant.text.normalize import has_diacritics, is_vietnamese_syllable
from assistant.text.teencode import TeencodeError, _parse, count_teencode, expand_and_count_teencode
from assistant.text.tokens import SYLLABLE_RE


def _raw_rows() -> list[list[str]]:
    text = resources.files("assistant.text").joinpath("data/teencode.tsv").read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    assert rows[0][:2] == ["teen", "expansion"]
    return rows[1:]


class TestDictionary:
    def test_has_at_least_150_entries(self) -> None:
        assert len(load_teencode()) >= 150

    def test_no_duplicate_keys_in_the_file(self) -> None:
        keys = [normalize_tone_marks(row[0]) for row in _raw_rows()]
        assert len(keys) == len(set(keys))

    def test_rows_have_three_or_four_columns(self) -> None:
        assert all(3 <= len(row) <= 4 for row in _raw_rows())

    def test_expansions_are_real_accented_vietnamese(self) -> None:
        """Every Vietnamese syllable in an expansion exists, with its accents, in Viet74K."""
        known = {
            s
            for entry in default_lexicon()[-1]
            for s in SYLLABLE_RE.findall(normalize_tone_marks(entry).lower())
        }
        missing = {
            (entry.teen, syllable)
            for entry in load_teencode().values()
            for syllable in SYLLABLE_RE.findall(entry.expansion.lower())
            if is_vietnamese_syllable(syllable) and syllable not in known
        }
        assert not missing

    def test_expansions_use_the_canonical_tone_style_and_nfc(self) -> None:
        for entry in load_teencode().values():
            assert normalize_tone_marks(entry.expansion) == entry.expansion
            assert unicodedata.is_normalized("NFC", entry.expansion)

    @pytest.mark.parametrize(
        ("teen", "expected"),
        [
            ("ko", "không"),
            ("dc", "được"),
            ("đc", "được"),
            ("j", "gì"),
            ("bt", "biết"),
            ("vs", "với"),
            ("r", "rồi"),
            ("ng", "người"),
            ("mik", "mình"),
            ("mn", "mọi người"),
            ("cx", "cũng"),
            ("ntn", "như thế nào"),
            ("sdt", "số điện thoại"),
            ("acc", "tài khoản"),
            ("zl", "zalo"),
            ("ib", "nhắn riêng"),
            ("wa", "quá"),
            ("zui", "vui"),
            ("jờ", "giờ"),
            ("thik", "thích"),
            ("iu", "yêu"),
            ("trc", "trước"),
            ("lm", "làm"),
            ("tn", "tin nhắn"),
        ],
    )
    def test_core_entries(self, teen: str, expected: str) -> None:
        assert load_teencode()[teen].expansion == expected

    def test_unknown_condition_is_rejected(self) -> None:
        with pytest.raises(TeencodeError, match="unknown condition"):
            _parse(["teen\texpansion\tcondition\tnote", "ko\tkhông\tsometimes\t"], "x.tsv")

    def test_duplicate_key_is_rejected(self) -> None:
        with pytest.raises(TeencodeError, match="duplicate"):
            _parse(["ko\tkhông\talways", "ko\tkhông\talways"], "x.tsv")


class TestExpansion:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("e ko bit lm j", "em không biết làm gì"),
            ("E bi ng ta doa", "Em bi người ta doa"),
            ("mk dc r", "mình được rồi"),
            ("Ko dc dau", "Không được dau"),
            ("bây h e phải lm s", "bây giờ em phải làm sao"),
            ("vui wa, zui z", "vui quá, vui vậy"),
            ("a oi giup e vs", "anh oi giup em với"),
            ("hong biết", "không biết"),
            ("đi đc hông?", "đi được không?"),
            ("ăn ui", "ăn rồi"),
            ("hum nay", "hôm nay"),
            ("bn tuổi", "bao nhiêu tuổi"),
            ("bn ơi", "bạn ơi"),
            ("uống nc", "uống nước"),
            ("nc vs e đi", "nói chuyện với em đi"),
            ("ck cho a 500k", "chuyển khoản cho anh 500 nghìn"),
            ("ck e", "chồng em"),
            ("đổi mk fb", "đổi mật khẩu facebook"),
            ("cho a xin pass", "cho anh xin mật khẩu"),
            ("ib e qua zl", "nhắn riêng em qua zalo"),
        ],
    )
    def test_expands_in_safe_contexts(self, text: str, expected: str) -> None:
        assert expand_teencode(text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("5k", "5 nghìn"),
            ("5 k", "5 nghìn"),
            ("10h30", "10 giờ 30"),
            ("5 h sáng", "5 giờ sáng"),
            ("2tr", "2 triệu"),
            ("15p nữa", "15 phút nữa"),
            ("e 13t", "em 13 tuổi"),
            ("e 2k10", "em 2010"),
        ],
    )
    def test_numbers_with_units(self, text: str, expected: str) -> None:
        assert expand_teencode(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "cảm ơn a",  # à/ạ/anh: ambiguous at the end
            "a b c d e",  # letters in a list
            "chữ r và chữ j",
            "vitamin h",
            "k pop",
            "e ngại",
            "điện thoại bị hong rồi",  # hỏng
            "hoa hong đẹp",  # hồng
            "ui da",
            "pass đồ",
            "rui ro",
            "bit",
            "ở hem 12",
            "nặng 5kg",
            "gọi 113 ngay",
            "HS lớp 9 và UK",  # acronyms
        ],
    )
    def test_keeps_ambiguous_tokens_in_unsafe_contexts(self, text: str) -> None:
        assert expand_teencode(text) == text

    @pytest.mark.parametrize(
        "text",
        [
            "https://ko.vn/dc?j=r",
            "www.mik.com/ko",
            "ko.dc@gmail.com",
            "@mik_ko",
            "#ko",
            "fb.com/ko.dc",
        ],
    )
    def test_never_inside_urls_emails_handles(self, text: str) -> None:
        assert expand_teencode(text) == text

    def test_text_around_protected_spans_is_still_expanded(self) -> None:
        assert expand_teencode("ib mik qua fb.com/ko nhé") == "nhắn riêng mình qua fb.com/ko nhé"

    def test_case_follows_the_token(self) -> None:
        assert expand_teencode("Ko") == "Không"
        assert expand_teencode("E ko bit") == "Em không biết"
        assert expand_teencode("EM KO BIT") == "EM KHÔNG BIẾT"

    def test_single_upper_case_letter_mid_sentence_is_kept(self) -> None:
        assert expand_teencode("lớp 9 K") == "lớp 9 K"

    def test_decomposed_input_matches(self) -> None:
        assert expand_teencode(unicodedata.normalize("NFD", "hông biết")) == "không biết"

    def test_plain_vietnamese_is_unchanged(self) -> None:
        text = "Em bị người lạ đe doạ trên mạng, em phải làm sao?"
        assert expand_teencode(text) == text
        assert count_teencode(text) == 0

    def test_expansions_carry_diacritics(self) -> None:
        assert has_diacritics(expand_teencode("ko dc"))

    def test_count(self) -> None:
        assert count_teencode("e ko bit lm j") == 5
        assert count_teencode("") == 0

    def test_one_pass_gives_the_expansion_and_the_count(self) -> None:
        for text in ("e ko bit lm j", "", "Em bị người lạ đe doạ", "ng ta nạp thẻ cho e r h đòi e trả ơn"):
            assert expand_and_count_teencode(text) == (expand_teencode(text), count_teencode(text))
        assert expand_and_count_teencode("e ko bit lm j")[1] == 5


def test_runs_of_teen_letters_are_not_a_letter_list() -> None:
    assert expand_teencode("ng ta nạp thẻ cho e r h đòi e trả ơn") == "người ta nạp thẻ cho em rồi giờ đòi em trả ơn"
    assert expand_teencode("a b c d") == "a b c d"
    assert expand_teencode("e bj tống tiền bằng ảnh") == "em bị tống tiền bằng ảnh"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("e đi hc về r", "em đi học về rồi"),
        ("acc lq của e", "tài khoản liên quân của em"),
        ("hack kc ff", "hack kim cương free fire"),
        ("dg bị chửi", "đang bị chửi"),
        ("lộ info r", "lộ thông tin rồi"),
        ("đổi avt", "đổi ảnh đại diện"),
    ],
)
def test_game_and_school_abbreviations(text: str, expected: str) -> None:
    assert expand_teencode(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chặn s", "chặn sao"),  # a question word closing the clause
        ("discord co ng la add fr hoai, chan s ad", "discord co người la kết bạn bạn hoai, chan sao admin"),
        ("giờ phải xoá s mn", "giờ phải xoá sao mọi người"),
        ("e thua mấy trăm k r", "em thua mấy trăm nghìn rồi"),
        ("kc fr ko", "kim cương miễn phí không"),
        ("có tool hack robux free ko", "có tool hack robux miễn phí không"),
        ("ph nên lm gì", "phụ huynh nên làm gì"),
        ("15 ph nữa", "15 phút nữa"),
        ("khoá tk fb", "khoá tài khoản facebook"),
        ("bị cmt xấu trên tiktok h e lm j", "bị bình luận xấu trên tiktok giờ em làm gì"),
        ("giờ phải lm j ạ", "giờ phải làm gì ạ"),  # "ạ" is a word, not a letter of a list
        ("e report r", "em báo cáo rồi"),
        ("có phải scam ko", "có phải lừa đảo không"),
        ("để acc private", "để tài khoản riêng tư"),
        ("cho thuê cccd", "cho thuê căn cước công dân"),
    ],
)
def test_clause_final_questions_game_words_and_loanwords(text: str, expected: str) -> None:
    assert expand_teencode(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "áo size s",
        "lớp s",
        "chữ s",
        "chơi free fire",  # a name, not "miễn phí"
        "độ pH",
        "tk kia",  # no account word near: kept
        "fr",
        "chữ h",
    ],
)
def test_new_rules_keep_unsafe_contexts(text: str) -> None:
    assert expand_teencode(text) == text


def test_app_and_game_names_expand_in_capitals_too() -> None:
    assert expand_teencode("ib vs ng lạ trong LQ") == "nhắn riêng với người lạ trong liên quân"
    assert expand_teencode("acc FF bị hack") == "tài khoản free fire bị hack"
    assert expand_teencode("FB e bị khoá") == "facebook em bị khoá"
    assert expand_teencode("ACC FF BỊ HACK") == "TÀI KHOẢN FREE FIRE BỊ HACK"
    assert expand_teencode("HS lớp 9 và UK") == "HS lớp 9 và UK"  # other acronyms are kept


def test_english_possessives_and_name_typos_are_kept() -> None:
    assert expand_teencode("game Five Nights at Freddy's, sợ quá") == "game Five Nights at Freddy's, sợ quá"
    assert expand_teencode("chơi free fir cả ngày") == "chơi free fir cả ngày"
