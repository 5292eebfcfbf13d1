"""One call that prepares a chat message for the rest of the pipeline.

``normalize(text, restorer)`` returns a :class:`NormalizedText` with every
form the risk classifier, retrieval and responder need. ``writing_style``
tells how the message was typed: ``"teencode"`` when at least two tokens (or
30 % of them) are teen code, else ``"diacritics"`` when at least 25 % of its
Vietnamese-looking syllables carry diacritics (correct Vietnamese chat rarely
goes below that: ``Anh ta gửi quà cho em`` is 33 %), else ``"no_diacritics"``.
Accents are restored when that share is below 25 % in the original text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from assistant.text.normalize import (
    fold_accents,
    has_diacritics,
    is_vietnamese_syllable,
    nfc,
    normalize_tone_marks,
)
from assistant.text.teencode import count_teencode, expand_and_count_teencode
from assistant.text.tokens import SYLLABLE_RE

if TYPE_CHECKING:
    from assistant.text.accents import AccentRestorer

__all__ = [
    "DIACRITICS_MIN_SHARE",
    "NormalizedText",
    "WritingStyle",
    "diacritic_share",
    "normalize",
    "writing_style",
]

WritingStyle = Literal["diacritics", "no_diacritics", "teencode"]

#: Below this share of accented syllables a message counts as typed without diacritics.
DIACRITICS_MIN_SHARE: Final = 0.25
_TEEN_MIN_TOKENS: Final = 2
_TEEN_MIN_SHARE: Final = 0.3


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """Forms of one message; see :func:`normalize`."""

    original: str
    clean: str  # NFC, whitespace collapsed, tone marks unified
    expanded: str  # teen code expanded
    restored: str  # accents restored when the message had (almost) none, else == expanded
    folded: str  # fold_accents(expanded), lower case: for accent-insensitive matching
    style: WritingStyle


def diacritic_share(text: str) -> float:
    """Share of Vietnamese-looking syllables in ``text`` that carry diacritics (0 if none)."""
    vietnamese = [s for s in SYLLABLE_RE.findall(text) if is_vietnamese_syllable(s)]
    if not vietnamese:
        return 0.0
    return sum(1 for s in vietnamese if has_diacritics(s)) / len(vietnamese)


def writing_style(text: str) -> WritingStyle:
    """How ``text`` is written: with diacritics, without, or in teen code."""
    clean = normalize_tone_marks(nfc(text))
    return _style(clean, count_teencode(clean), diacritic_share(clean))


def _style(clean: str, teen: int, share: float) -> WritingStyle:
    """The style of cleaned text with ``teen`` teen-code tokens and ``share`` of syllables with diacritics."""
    words = [w for w in clean.split() if any(ch.isalnum() for ch in w)]
    if teen >= _TEEN_MIN_TOKENS or (words and teen / len(words) >= _TEEN_MIN_SHARE):
        return "teencode"
    return "diacritics" if share >= DIACRITICS_MIN_SHARE else "no_diacritics"


def normalize(text: str, restorer: AccentRestorer | None = None) -> NormalizedText:
    """Clean, expand teen code, restore accents (with ``restorer``) and fold ``text``."""
    clean = normalize_tone_marks(nfc(text))
    expanded, teen = expand_and_count_teencode(clean)  # one pass for both
    share = diacritic_share(clean)
    style = _style(clean, teen, share)
    restored = expanded
    if restorer is not None and share < DIACRITICS_MIN_SHARE:
        restored = normalize_tone_marks(restorer.restore(expanded))
    return NormalizedText(
        original=text,
        clean=clean,
        expanded=expanded,
        restored=restored,
        folded=fold_accents(expanded).lower(),
        style=style,
    )
