"""Unicode and orthography helpers for Vietnamese chat text.

Tone-mark placement
-------------------
Vietnamese has two conventions for where the tone mark goes in the open
syllables ``oa``, ``oe`` and ``uy``: the "old" style puts it on the second
vowel (``hoà``, ``khoẻ``, ``thuỷ``), the "new" style on the first (``hòa``,
``khỏe``, ``thủy``). Users type both. We normalise to the **old style**, the one
used by underthesea's ``Viet74K`` word list (``hoà`` 164 vs ``hòa`` 17 entries,
``thuỷ`` 185 vs ``thủy`` 78, ``uỷ`` 50 vs ``ủy`` 14), so dictionary and
language-model lookups match. Every other syllable is placed the way both
styles agree: on the vowel carrying a diacritic (the second one in ``ươ``),
otherwise on the last vowel before a final consonant, otherwise on the middle
of three vowels or the first of two. ``qu`` and ``gi`` are onsets, so ``quả``,
``quý`` and ``già`` are unaffected. Tokens that do not look like a Vietnamese
syllable, or that carry more than one tone mark, are left untouched.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final

__all__ = [
    "PROTECTED_RE",
    "VIETNAMESE_SYLLABLE_RE",
    "fold_accents",
    "has_diacritics",
    "is_vietnamese_syllable",
    "nfc",
    "normalize_tone_marks",
]

# Combining tone marks: acute, grave, hook above, tilde, dot below.
_TONE_MARKS: Final = frozenset("\u0301\u0300\u0309\u0303\u0323")
_VOWELS: Final = "aăâeêioôơuưy"
_MARKED_VOWELS: Final = frozenset("ăâêôơư")
_OLD_STYLE_PAIRS: Final = frozenset({"oa", "oe", "uy"})

_ONSETS: Final = "ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|b|c|d|đ|g|h|k|l|m|n|p|r|s|t|v|x"
_CODAS: Final = "ch|ng|nh|c|m|n|p|t"
# Matches a lower-case syllable *without* tone marks (vowel diacritics allowed).
_BASE_SYLLABLE_RE: Final = re.compile(
    rf"^(?P<onset>{_ONSETS})?(?P<nucleus>[{_VOWELS}]{{1,3}})(?P<coda>{_CODAS})?$"
)
#: A folded (accent-free) lower-case Vietnamese syllable.
VIETNAMESE_SYLLABLE_RE: Final = re.compile(rf"^(?:{_ONSETS.replace('|đ', '')})?[aeiouy]{{1,3}}(?:{_CODAS})?$")

#: URLs, e-mail addresses, @handles, #hashtags and bare domains: never rewritten.
PROTECTED_RE: Final = re.compile(
    r"""(?xi)
      (?:https?://|www\.)\S+
    | [\w.+-]+@[\w-]+(?:\.[\w-]+)+
    | [@#][\w.]*\w
    | \b[\w-]+(?:\.[\w-]+)*\.(?:com|vn|net|org|edu|gov|info|io|me|ly|gl|tv|xyz|app)\b(?:/\S*)?
    """
)
_WORD_RE: Final = re.compile(r"[^\W\d_]+")
_HSPACE_RE: Final = re.compile(r"[^\S\n]+")
_NEWLINES_RE: Final = re.compile(r"\s*\n\s*")

_VIETNAMESE_MARKED_LETTERS: Final = frozenset(
    "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
)


def nfc(text: str) -> str:
    """NFC-normalise, drop zero-width/control characters, collapse whitespace.

    Runs of spaces and tabs become one space; runs containing a line break
    become one ``"\\n"`` (kept as a sentence boundary). Leading and trailing
    whitespace is removed.
    """
    text = unicodedata.normalize("NFC", text)
    kept = [ch for ch in text if ch in "\n\t\r " or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")]
    text = "".join(kept).replace("\r", "\n")
    text = _HSPACE_RE.sub(" ", text)
    text = _NEWLINES_RE.sub("\n", text)
    return text.strip()


def _tone_index(base: str) -> int | None:
    """Index in ``base`` (lower-case, no tone mark) where the tone mark goes."""
    match = _BASE_SYLLABLE_RE.match(base)
    if match is None:
        return None
    start = match.start("nucleus")
    nucleus = match.group("nucleus")
    marked = [i for i, ch in enumerate(nucleus) if ch in _MARKED_VOWELS]
    if marked:
        offset = marked[-1]
    elif match.group("coda"):
        offset = len(nucleus) - 1
    elif len(nucleus) == 3:
        offset = 1
    elif len(nucleus) == 2:
        offset = 1 if nucleus in _OLD_STYLE_PAIRS else 0
    else:
        offset = 0
    return start + offset


@lru_cache(maxsize=65536)
def _retone_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    tones = [ch for ch in decomposed if ch in _TONE_MARKS]
    if len(tones) != 1:
        return word
    base = unicodedata.normalize("NFC", "".join(ch for ch in decomposed if ch not in _TONE_MARKS))
    index = _tone_index(base.lower())
    if index is None:
        return word
    chars = list(base)
    chars[index] = unicodedata.normalize("NFC", chars[index] + tones[0])
    return "".join(chars)


def normalize_tone_marks(text: str) -> str:
    """Place tone marks in the old (Viet74K) style; see the module docstring.

    Accepts decomposed input; the result is NFC. Case is preserved.
    """
    text = unicodedata.normalize("NFC", text)
    return _WORD_RE.sub(lambda m: _retone_word(m.group(0)), text)


class _FoldTable(dict[int, str]):
    """``str.translate`` table of :func:`fold_accents`, filled one character at a time.

    A character maps to its canonical decomposition without combining marks, so
    translating and then composing (NFC) gives exactly what decomposing the whole
    text, dropping its combining marks and composing gives: decomposition works
    character by character, and only combining marks are ever reordered.
    """

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        self[code] = folded
        return folded


_FOLD: Final = _FoldTable({ord("đ"): "d", ord("Đ"): "D"})


def fold_accents(text: str) -> str:
    """Remove every diacritic (tone and vowel marks); ``đ``→``d``, ``Đ``→``D``."""
    # Called for every word by the text layer: one translate (a few µs) instead
    # of a Python loop over the decomposed characters.
    folded = text.translate(_FOLD)
    return folded if folded.isascii() else unicodedata.normalize("NFC", folded)


def has_diacritics(text: str) -> bool:
    """True if ``text`` contains at least one Vietnamese accented letter or ``đ``."""
    lowered = unicodedata.normalize("NFC", text).lower()
    return any(ch in _VIETNAMESE_MARKED_LETTERS for ch in lowered)


def is_vietnamese_syllable(token: str) -> bool:
    """True if ``token`` has the shape of one Vietnamese syllable (any accents)."""
    return VIETNAMESE_SYLLABLE_RE.match(fold_accents(token).lower()) is not None
