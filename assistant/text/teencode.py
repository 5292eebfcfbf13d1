"""Teen-code expansion with a reviewed dictionary and context rules.

The dictionary is ``data/teencode.tsv`` (teen form, expansion, condition,
note). Expansion works on word tokens (runs of letters/digits), never inside
URLs, e-mail addresses, ``@handles`` or ``#hashtags``. Rules:

* ``always`` entries are not Vietnamese words (``ko``, ``dc``, ``mik``) and are
  expanded wherever they stand alone. Matching is on the lower-cased,
  tone-normalised token, so ``Ko``/``KO`` match; an all-capitals token of two or
  more letters (an acronym such as ``UK``, ``HS``) is expanded only when the
  whole message is written in capitals.
* ``name`` entries are short names of apps and games (``fb``, ``zl``, ``lq``,
  ``ff``): expanded like ``always`` and in capitals too (``chơi LQ``, ``acc FF``),
  since users write them either way.
* Single letters (``a e h j k r s v z``) and teen forms that are also real words
  (``hong``, ``bit``, ``ui``, ``hum``, ``pass``...) have a ``rule:NAME``: a
  function that looks at the neighbouring words of the same sentence and
  expands only where that is safe, e.g. ``h`` → ``giờ`` after a number or
  ``bây``, ``k`` → ``nghìn`` after a number but ``không`` elsewhere, ``k pop``
  kept. Single letters are only expanded in lower case, or capitalised at the
  start of a sentence (phone keyboards capitalise ``E bị...``). Letters in a
  list (``a b c``) or after ``chữ``/``vitamin`` are kept.
* Numbers with a unit suffix are spelled out: ``5k`` → ``5 nghìn``, ``2tr`` →
  ``2 triệu``, ``10h30`` → ``10 giờ 30``, ``15p`` → ``15 phút``, ``13t`` →
  ``13 tuổi``, ``2k10`` → ``2010`` (birth year).

The expansion takes the case of the token (``Ko`` → ``Không``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from assistant.text.normalize import PROTECTED_RE, fold_accents, normalize_tone_marks

__all__ = [
    "TeencodeEntry",
    "TeencodeError",
    "count_teencode",
    "expand_teencode",
    "load_teencode",
]


class TeencodeError(ValueError):
    """The teen-code dictionary is malformed."""


@dataclass(frozen=True, slots=True)
class TeencodeEntry:
    """One row of ``teencode.tsv``."""

    teen: str
    expansion: str
    condition: str
    note: str


@dataclass(frozen=True, slots=True)
class _Context:
    prev: str | None  # folded lower-case last word of the previous token's expansion
    next: str | None  # folded lower-case next token (its static expansion when unambiguous)
    prev_is_number: bool
    next_is_number: bool
    clause_end: bool  # nothing follows in the same clause
    sentence_start: bool
    window: tuple[str, ...]  # folded tokens up to 3 either side, same sentence
    letter_list: bool  # a neighbour is a single letter too ("a b c")


_Rule = Callable[[_Context, str], str | None]

_WORD_RE: Final = re.compile(r"[^\W_]+")
_NUMBER_RE: Final = re.compile(r"^\d+(?:[.,]\d+)?$")
_NUMBER_UNIT_RE: Final = re.compile(r"^(\d+)(k|tr|h|p|ph|t|tuoi|tuổi)(\d{0,2})$", re.IGNORECASE)
_BIRTH_YEAR_RE: Final = re.compile(r"^2k(\d{1,2})$", re.IGNORECASE)
_SENTENCE_BREAK: Final = frozenset(".!?\n…")
_CLAUSE_BREAK: Final = frozenset(".!?\n…,;:()")
_MONEY_RE: Final = re.compile(r"^\d+(?:[.,]\d+)*(?:k|tr|d|đ|vnd|nghin|trieu)?$")

_NUMBER_UNITS: Final[Mapping[str, str]] = {
    "k": "nghìn",
    "tr": "triệu",
    "h": "giờ",
    "p": "phút",
    "ph": "phút",
    "t": "tuổi",
    "tuoi": "tuổi",
    "tuổi": "tuổi",
}

# Context word sets, folded and lower-cased.
_NEGATIONS: Final = frozenset(
    ["khong", "ko", "k", "kh", "hok", "hong", "hem", "chua", "chang", "cha", "dau", "hk", "khum", "kg"]
)
_PRONOUNS: Final = frozenset(
    [
        "em",
        "e",
        "anh",
        "a",
        "chi",
        "cj",
        "minh",
        "mk",
        "mik",
        "toi",
        "tui",
        "t",
        "tao",
        "to",
        "ban",
        "bn",
        "cau",
        "may",
        "no",
        "ho",
        "ta",
        "ngta",
        "nguoi",
        "ai",
        "con",
    ]
)
_VERBS: Final = frozenset(
    [
        "co",
        "la",
        "dang",
        "da",
        "se",
        "muon",
        "mun",
        "biet",
        "bit",
        "bt",
        "cho",
        "lam",
        "lm",
        "noi",
        "ns",
        "di",
        "den",
        "khong",
        "ko",
        "k",
        "hok",
        "yeu",
        "iu",
        "thich",
        "thik",
        "hay",
        "can",
        "bi",
        "duoc",
        "dc",
        "nhan",
        "gui",
        "xem",
        "thay",
        "hoi",
        "goi",
        "nghi",
        "phai",
        "oi",
        "nhe",
        "nha",
        "ve",
        "an",
        "ngu",
        "choi",
        "hoc",
        "doc",
        "viet",
        "mua",
        "ban",
        "nghe",
        "hieu",
        "nho",
        "quen",
        "tin",
        "chiu",
        "giup",
        "dua",
        "lay",
        "xin",
        "ke",
        "cung",
        "cx",
        "van",
        "vs",
        "voi",
        "o",
        "chua",
        "moi",
        "ms",
        "that",
        "thuong",
        "ghet",
        "dam",
    ]
)
_LETTER_CONTEXT: Final = frozenset(["chu", "vitamin", "am", "ky", "tu"])


def _fold(word: str) -> str:
    return fold_accents(word).lower()


# --------------------------------------------------------------------------- rules


def _rule_k(ctx: _Context, default: str) -> str | None:
    if ctx.prev_is_number or ctx.prev in {"tram", "chuc"}:  # "mấy trăm k" = mấy trăm nghìn
        return "nghìn"
    if ctx.next in {"pop", "drama"} or ctx.prev in _LETTER_CONTEXT:
        return None
    return default


def _rule_hk(ctx: _Context, default: str) -> str | None:
    if ctx.next_is_number or ctx.next in {"i", "ii", "mot", "hai"}:
        return "học kỳ"
    return default


def _rule_kg(ctx: _Context, default: str) -> str | None:
    return None if ctx.prev_is_number else default


_HONG_NEXT: Final = frozenset(
    [
        "biet",
        "bit",
        "bt",
        "co",
        "duoc",
        "dc",
        "phai",
        "muon",
        "mun",
        "thich",
        "thik",
        "sao",
        "can",
        "lam",
        "lm",
        "di",
        "noi",
        "ns",
        "hieu",
        "nho",
        "an",
        "chiu",
        "thay",
        "nghe",
        "ai",
        "nen",
        "dam",
        "tin",
        "yeu",
        "iu",
        "gap",
        "cho",
        "choi",
        "hoc",
        "ngu",
        "ve",
        "tra",
        "giup",
        "ra",
        "vo",
        "vao",
    ]
)
_HONG_CLOSE_PREV: Final = frozenset(
    ["duoc", "dc", "co", "phai", "biet", "bit", "bt", "di", "an", "nha", "chua", "that"]
)
_HONG_NOT_PREV: Final = frozenset(["bi", "hoa", "mau", "son", "ma", "da", "bong", "hu", "lam", "lo"])


def _rule_hong(ctx: _Context, default: str) -> str | None:
    if ctx.prev in _HONG_NOT_PREV:
        return None
    if ctx.next in _HONG_NEXT:
        return default
    if ctx.clause_end and ctx.prev in _HONG_CLOSE_PREV:
        return default
    return None


def _rule_hem(ctx: _Context, default: str) -> str | None:
    if ctx.next_is_number or ctx.prev in {"o", "trong", "vao", "so", "dau", "ngo", "cuoi"}:
        return None
    return _rule_hong(ctx, default)


def _single_letter_ok(ctx: _Context) -> bool:
    return not ctx.letter_list and ctx.prev not in _LETTER_CONTEXT


def _rule_j(ctx: _Context, default: str) -> str | None:
    return default if _single_letter_ok(ctx) else None


def _rule_r(ctx: _Context, default: str) -> str | None:
    if not _single_letter_ok(ctx) or ctx.prev_is_number or ctx.next_is_number:
        return None
    return default


_H_PREV: Final = frozenset(["bay", "may", "luc", "den", "tu", "toi", "khoang", "gan", "qua", "roi", "r", "ma"])
_H_NEXT: Final = frozenset(["phai", "lam", "lm", "sao", "thi", "bao", "doi", "moi", "ms", "dang", "dg", "muon", "mun"])


def _rule_h(ctx: _Context, default: str) -> str | None:
    if ctx.prev_is_number or ctx.prev in _H_PREV:
        return default
    if ctx.sentence_start and (ctx.next in _PRONOUNS or ctx.next in _H_NEXT):
        return default
    # Mid-sentence before a pronoun or a verb: "trên tiktok h e lm j", "r h bảo e đi gặp".
    if _single_letter_ok(ctx) and (ctx.next in _PRONOUNS or ctx.next in _H_NEXT):
        return default
    return None


_V_PREV: Final = frozenset(["sao", "the", "nhu", "lam", "lm", "gi", "j", "vi", "thi"])


def _rule_v(ctx: _Context, default: str) -> str | None:
    if not _single_letter_ok(ctx) or ctx.prev_is_number:
        return None
    if ctx.prev in _V_PREV:
        return default
    if ctx.sentence_start and ctx.next in {"thi", "la", "ha", "ah", "a"}:
        return default
    if ctx.clause_end and ctx.prev is not None and len(ctx.prev) > 1:
        return default
    return None


_S_NEXT: Final = frozenset(
    ["v", "z", "vay", "the", "lai", "ko", "k", "khong", "roi", "r", "ma", "day", "nhi", "ta", "ha", "ah", "a"]
)
_S_NEXT_ADDRESS: Final = frozenset(["admin", "ad", "moi", "mn", "ban", "bn", "anh", "chi", "cj", "oi"])
_S_NOT_PREV: Final = frozenset(["size", "co", "loai", "hang", "so", "phong", "tang", "khu", "xe", "ao", "lop"])


def _rule_s(ctx: _Context, default: str) -> str | None:
    if not _single_letter_ok(ctx) or ctx.prev_is_number:
        return None
    if ctx.next in _S_NEXT:
        return default
    if ctx.prev in {"lam", "lm", "thi", "vi", "biet", "bit", "bt"}:
        return default
    # A question word closing the clause, alone or before the one asked ("chặn s ad",
    # "đổi s mn", "giờ phải xoá s"); sizes and labels ("áo size s", "lớp s") are kept.
    if ctx.prev is None or ctx.prev in _S_NOT_PREV or len(ctx.prev) < 2:
        return None
    if ctx.clause_end or ctx.next in _S_NEXT_ADDRESS:
        return default
    return None


def _rule_ui(ctx: _Context, default: str) -> str | None:
    if ctx.clause_end and ctx.prev is not None and ctx.prev not in {"oi", "ui"}:
        return default
    return None


def _rule_tr(ctx: _Context, default: str) -> str | None:
    if ctx.prev_is_number:
        return "triệu"
    if ctx.next in {"oi", "ui"}:
        return default
    return None


_NC_PREV: Final = frozenset(
    ["uong", "ly", "coc", "chai", "can", "tuoi", "do", "rot", "nau", "dun", "xin", "mang"]
)
_NC_NEXT: Final = frozenset(
    ["ngoai", "mia", "ngot", "uong", "suoi", "da", "chanh", "cam", "loc", "mam", "tuong", "hoa"]
)


def _rule_nc(ctx: _Context, default: str) -> str | None:
    if ctx.prev in _NC_PREV or ctx.next in _NC_NEXT:
        return "nước"
    return default


_BN_NEXT: Final = frozenset(
    [
        "tuoi",
        "tien",
        "lau",
        "cai",
        "ngay",
        "gio",
        "h",
        "nam",
        "thang",
        "lan",
        "nguoi",
        "ng",
        "con",
        "km",
        "phan",
        "diem",
        "tuan",
    ]
)


def _rule_bn(ctx: _Context, default: str) -> str | None:
    if ctx.next in _BN_NEXT or ctx.prev in {"gia", "het", "mat", "ton", "cao", "nang"}:
        return "bao nhiêu"
    return default


_BT_PREV: Final = frozenset(["rat", "hoi", "van", "la", "kha", "thi", "qua", "song", "nhu"])


def _rule_bt(ctx: _Context, default: str) -> str | None:
    if ctx.prev in _BT_PREV:
        return "bình thường"
    return default


_BIT_NEXT: Final = frozenset(
    ["ko", "k", "khong", "hok", "j", "gi", "roi", "r", "ai", "sao", "lam", "ntn", "the", "ro", "dc", "duoc"]
)


def _rule_bit(ctx: _Context, default: str) -> str | None:
    prev_ok = (
        ctx.prev in _NEGATIONS
        or ctx.prev in _PRONOUNS
        or ctx.prev in {"cung", "cx", "da", "muon", "mun", "de", "roi", "deu", "can", "phai", "ma"}
    )
    if prev_ok or ctx.next in _BIT_NEXT:
        return default
    return None


def _rule_hum(ctx: _Context, default: str) -> str | None:
    if ctx.next in {"nay", "qua", "kia", "truoc", "trc", "no", "nao", "do", "sau"}:
        return default
    return None


def _rule_pass(ctx: _Context, default: str) -> str | None:
    if ctx.next in {"do", "lai", "gia", "mon"}:
        return None
    return default


_MK_PREV: Final = frozenset(
    ["doi", "nhap", "quen", "lay", "xin", "dat", "cho", "hack", "go", "reset", "lo", "doan"]
)
_MK_NEXT: Final = frozenset(
    ["fb", "facebook", "zalo", "zl", "acc", "tai", "ig", "instagram", "mail", "email", "game", "wifi"]
)


def _rule_mk(ctx: _Context, default: str) -> str | None:
    if ctx.prev in _MK_PREV or ctx.next in _MK_NEXT:
        return "mật khẩu"
    return default


_MONEY_WORDS: Final = frozenset(["tien", "stk", "bank", "momo", "zalopay", "vnd", "dong", "nghin", "trieu"])


def _rule_ck(ctx: _Context, default: str) -> str | None:
    if any(w in _MONEY_WORDS or _MONEY_RE.match(w) for w in ctx.window):
        return "chuyển khoản"
    return default


_E_NOT_NEXT: Final = frozenset(["ngai", "de", "then", "ap"])


def _rule_e(ctx: _Context, default: str) -> str | None:
    if not _single_letter_ok(ctx) or ctx.next in _E_NOT_NEXT:
        return None
    return default


_A_PREV: Final = frozenset(
    [
        "cua",
        "voi",
        "cho",
        "gap",
        "goi",
        "hoi",
        "bao",
        "yeu",
        "iu",
        "thuong",
        "nho",
        "giup",
        "nhan",
        "ke",
        "ghet",
        "tin",
        "sau",
        "truoc",
    ]
)


def _rule_a(ctx: _Context, default: str) -> str | None:
    if not _single_letter_ok(ctx):
        return None
    if ctx.next in _VERBS:
        return default
    if ctx.prev in _A_PREV and (ctx.prev == "cua" or not ctx.clause_end):
        return default
    return None


_FR_FRIEND_PREV: Final = frozenset(["ban", "add", "kb", "accept", "unfr", "huy"])
_FR_FREE_PREV: Final = frozenset(
    ["cuong", "kc", "skin", "robux", "tuong", "do", "acc", "khoan", "nitro", "vip", "quan", "the", "card", "qua", "game"]
)


def _rule_fr(ctx: _Context, default: str) -> str | None:
    """``fr``: friend after "add"/"kết bạn" ("add fr"), free after a game item ("kc fr")."""
    if ctx.prev in _FR_FRIEND_PREV or ctx.next in {"request", "req"}:
        return default
    if ctx.prev in _FR_FREE_PREV:
        return "miễn phí"
    return None


def _rule_free(ctx: _Context, default: str) -> str | None:
    """``free`` is "miễn phí" except in a name: Free Fire, free style."""
    if ctx.next in {"style", "ship"} or (ctx.next or "").startswith("f") or ctx.prev in {"garena"}:
        return None  # "free fire", "free fir", "free fre" (typos of the name)
    return default


def _rule_ph(ctx: _Context, default: str) -> str | None:
    """``ph``: minutes after a number ("15 ph"), else phụ huynh; kept in "độ pH"."""
    if ctx.prev_is_number:
        return "phút"
    if ctx.prev in {"do", "chi"} or ctx.next_is_number:
        return None
    return default


_TK_CONTEXT: Final = frozenset(
    [
        "ngan", "hang", "bank", "khoa", "hack", "mat", "khau", "pass", "game", "facebook", "zalo",
        "tiktok", "instagram", "lap", "tao", "nhap", "thue", "mua", "momo", "stk", "chuyen",
        "fake", "gia", "lay", "doi", "nick", "dang",
    ]
)


def _rule_tk(ctx: _Context, default: str) -> str | None:
    """``tk``: tài khoản when an account word stands near ("khoá tk", "tk ngân hàng")."""
    if ctx.prev in _TK_CONTEXT or ctx.next in _TK_CONTEXT:
        return default
    return None


def _after_number(ctx: _Context, default: str) -> str | None:
    return default if ctx.prev_is_number else None


def _always(ctx: _Context, default: str) -> str | None:  # noqa: ARG001 - rule signature
    return default


_RULES: Final[Mapping[str, _Rule]] = {
    "always": _always,
    "name": _always,
    "after_number": _after_number,
    "rule:a": _rule_a,
    "rule:bit": _rule_bit,
    "rule:bn": _rule_bn,
    "rule:bt": _rule_bt,
    "rule:ck": _rule_ck,
    "rule:e": _rule_e,
    "rule:fr": _rule_fr,
    "rule:free": _rule_free,
    "rule:h": _rule_h,
    "rule:hem": _rule_hem,
    "rule:hk": _rule_hk,
    "rule:hong": _rule_hong,
    "rule:hum": _rule_hum,
    "rule:j": _rule_j,
    "rule:k": _rule_k,
    "rule:kg": _rule_kg,
    "rule:mk": _rule_mk,
    "rule:nc": _rule_nc,
    "rule:pass": _rule_pass,
    "rule:ph": _rule_ph,
    "rule:r": _rule_r,
    "rule:s": _rule_s,
    "rule:tk": _rule_tk,
    "rule:tr": _rule_tr,
    "rule:ui": _rule_ui,
    "rule:v": _rule_v,
}


# ----------------------------------------------------------------------- loading


def _parse(lines: list[str], source: str) -> dict[str, TeencodeEntry]:
    entries: dict[str, TeencodeEntry] = {}
    header_seen = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if not header_seen:
            header_seen = True
            if fields[:2] == ["teen", "expansion"]:
                continue
        if len(fields) < 3 or len(fields) > 4:
            raise TeencodeError(f"{source}:{number}: expected 3-4 tab-separated fields")
        teen = normalize_tone_marks(fields[0].strip())
        expansion = normalize_tone_marks(fields[1].strip())
        condition = fields[2].strip()
        note = fields[3].strip() if len(fields) == 4 else ""
        if not teen or not expansion:
            raise TeencodeError(f"{source}:{number}: empty teen form or expansion")
        if teen != teen.lower():
            raise TeencodeError(f"{source}:{number}: teen form {teen!r} must be lower case")
        if condition not in _RULES:
            raise TeencodeError(f"{source}:{number}: unknown condition {condition!r}")
        if teen in entries:
            raise TeencodeError(f"{source}:{number}: duplicate teen form {teen!r}")
        entries[teen] = TeencodeEntry(teen, expansion, condition, note)
    return entries


@cache
def load_teencode() -> Mapping[str, TeencodeEntry]:
    """The packaged dictionary, keyed by lower-case teen form."""
    resource = resources.files("assistant.text").joinpath("data/teencode.tsv")
    text = resource.read_text(encoding="utf-8")
    return _parse(text.splitlines(), "teencode.tsv")


# --------------------------------------------------------------------- expansion


@dataclass(slots=True)
class _Token:
    start: int
    end: int
    text: str
    protected: bool


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    for match in PROTECTED_RE.finditer(text):
        for word in _WORD_RE.finditer(text, pos, match.start()):
            tokens.append(_Token(word.start(), word.end(), word.group(0), False))
        tokens.append(_Token(match.start(), match.end(), match.group(0), True))
        pos = match.end()
    for word in _WORD_RE.finditer(text, pos):
        tokens.append(_Token(word.start(), word.end(), word.group(0), False))
    return tokens


def _apply_case(source: str, expansion: str) -> str:
    if len(source) > 1 and source.isupper():
        return expansion.upper()
    if source[:1].isupper():
        return expansion[:1].upper() + expansion[1:]
    return expansion


def _expand_number(token: str) -> str | None:
    year = _BIRTH_YEAR_RE.match(token)
    if year:
        return f"20{int(year.group(1)):02d}"
    match = _NUMBER_UNIT_RE.match(token)
    if match is None:
        return None
    number, unit, rest = match.groups()
    words = f"{number} {_NUMBER_UNITS[unit.lower()]}"
    return f"{words} {rest}" if rest else words


def _is_number(word: str) -> bool:
    return bool(_NUMBER_RE.match(word))


def _expand(text: str) -> tuple[str, int]:
    text = unicodedata.normalize("NFC", text)
    table = load_teencode()
    tokens = _tokens(text)
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) >= 4 and all(c.isupper() for c in letters)
    out: list[str] = []
    pos = 0
    changed = 0
    prev_out: str | None = None  # folded last word of the previous output token
    prev_number = False
    for i, tok in enumerate(tokens):
        gap_before = text[pos : tok.start]
        out.append(gap_before)
        pos = tok.end
        sentence_start = i == 0 or any(c in _SENTENCE_BREAK for c in text[tokens[i - 1].end : tok.start])
        if i > 0 and any(c in _CLAUSE_BREAK for c in text[tokens[i - 1].end : tok.start]):
            prev_out, prev_number = None, False
        replacement: str | None = None
        if not tok.protected:
            replacement = _expand_number(tok.text)
            lowered = normalize_tone_marks(tok.text.lower())
            entry = table.get(lowered)
            if replacement is None and entry is not None:
                replacement = _expand_entry(
                    tok, entry, tokens, i, text, prev_out, prev_number, sentence_start, shouting
                )
        if replacement is not None and replacement != tok.text:
            out.append(replacement)
            changed += 1
        else:
            replacement = tok.text
            out.append(tok.text)
        last_word = replacement.split()[-1] if replacement.split() else replacement
        prev_out = "" if tok.protected else _fold(last_word)
        prev_number = not tok.protected and (_is_number(tok.text) or _is_number(last_word))
    out.append(text[pos:])
    return "".join(out), changed


def _neighbour(tokens: list[_Token], i: int, step: int, text: str, breaks: frozenset[str]) -> _Token | None:
    j = i + step
    if j < 0 or j >= len(tokens):
        return None
    a, b = (tokens[j], tokens[i]) if step < 0 else (tokens[i], tokens[j])
    if any(c in breaks for c in text[a.end : b.start]):
        return None
    return tokens[j]


def _expand_entry(
    tok: _Token,
    entry: TeencodeEntry,
    tokens: list[_Token],
    i: int,
    text: str,
    prev_out: str | None,
    prev_number: bool,
    sentence_start: bool,
    shouting: bool,
) -> str | None:
    word = tok.text
    if text[tok.start - 1 : tok.start] in {"'", "’"}:
        return None  # an English possessive or contraction: "Freddy's", "it's"
    if len(word) == 1:
        if word.isupper() and not (sentence_start or shouting):
            return None
    elif word.isupper() and not shouting and entry.condition != "name":
        return None
    table = load_teencode()
    nxt = _neighbour(tokens, i, 1, text, _CLAUSE_BREAK)
    prv = _neighbour(tokens, i, -1, text, _CLAUSE_BREAK)
    next_word: str | None = None
    if nxt is not None and not nxt.protected:
        nxt_entry = table.get(normalize_tone_marks(nxt.text.lower()))
        if nxt_entry is not None and nxt_entry.condition == "always":
            next_word = _fold(nxt_entry.expansion.split()[0])
        else:
            next_word = _fold(nxt.text)
    elif nxt is not None:
        next_word = ""
    window: list[str] = []
    for step in (-3, -2, -1, 1, 2, 3):
        other = _neighbour_far(tokens, i, step, text)
        if other is not None and not other.protected:
            window.append(_fold(other.text))
    around = [_neighbour_far(tokens, i, step, text) for step in (-1, 1)]
    # Only Latin letters make a list: "ạ", "à", "ở" are words ("lm j ạ"), and so are the
    # unaccented "o" (ở), "u" (ừ) and "y" (ý).
    singles = [
        n
        for n in around
        if n is not None and len(n.text) == 1 and n.text.isascii() and n.text.isalpha()
        and n.text.lower() not in {"o", "u", "y"}
    ]
    # Two single-letter neighbours form a list only when the letters run in
    # alphabetical order ("a b c") or are capitals; "cho e r h đòi" is teen code.
    letter_list = (
        len(singles) == 2 and _alphabet_run(singles[0].text, word, singles[1].text)
    ) or any(n.text.lower() not in table for n in singles)
    ctx = _Context(
        prev=prev_out if prv is not None else None,
        next=next_word,
        prev_is_number=prev_number and prv is not None,
        next_is_number=nxt is not None and not nxt.protected and _is_number(nxt.text),
        clause_end=nxt is None,
        sentence_start=sentence_start,
        window=tuple(window),
        letter_list=letter_list,
    )
    result = _RULES[entry.condition](ctx, entry.expansion)
    if result is not None and entry.condition == "name" and word.isupper() and not shouting:
        return result  # "chơi LQ" -> "chơi liên quân", not "LIÊN QUÂN"
    return None if result is None else _apply_case(word, result)


def _alphabet_run(before: str, word: str, after: str) -> bool:
    letters = [before, word, after]
    if any(len(ch) != 1 for ch in letters):
        return True
    if any(ch.isupper() for ch in letters):
        return True
    codes = [ord(ch.lower()) for ch in letters]
    return codes[1] - codes[0] == 1 and codes[2] - codes[1] == 1


def _neighbour_far(tokens: list[_Token], i: int, step: int, text: str) -> _Token | None:
    j = i + step
    if j < 0 or j >= len(tokens):
        return None
    lo, hi = (j, i) if j < i else (i, j)
    if any(c in _SENTENCE_BREAK for c in text[tokens[lo].end : tokens[hi].start]):
        return None
    return tokens[j]


def expand_teencode(text: str) -> str:
    """Expand teen code in ``text`` (see the module docstring for the rules)."""
    return _expand(text)[0]


def count_teencode(text: str) -> int:
    """Number of tokens :func:`expand_teencode` would replace."""
    return _expand(text)[1]


def expand_and_count_teencode(text: str) -> tuple[str, int]:
    """``(expand_teencode(text), count_teencode(text))`` in one pass."""
    return _expand(text)
