"""Syllable splitting and word segmentation.

``syllables`` is a plain regex split (runs of letters, Vietnamese syllables are
written space-separated). ``word_tokenize`` groups syllables into words with
underthesea, imported lazily on first use (its import takes seconds); without
underthesea it falls back to ``syllables``. underthesea segments text without
diacritics poorly: restore accents first.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import Final

from assistant.text.normalize import nfc

__all__ = ["SYLLABLE_RE", "syllables", "word_tokenize"]

log = logging.getLogger(__name__)

#: A syllable: a run of letters (digits, ``_`` and punctuation separate syllables).
SYLLABLE_RE: Final = re.compile(r"[^\W\d_]+")

_Tokenizer = Callable[[str], list[str]]
_tokenizer: _Tokenizer | None = None
_tokenizer_missing = False


def syllables(text: str, *, lower: bool = False) -> list[str]:
    """Split ``text`` into letter runs (syllables), optionally lower-cased."""
    text = nfc(text)
    found = SYLLABLE_RE.findall(text)
    return [s.lower() for s in found] if lower else found


def _load_tokenizer() -> _Tokenizer | None:
    global _tokenizer, _tokenizer_missing
    if _tokenizer is None and not _tokenizer_missing:
        try:
            module = importlib.import_module("underthesea")
        except ImportError:
            log.warning("underthesea is not installed; word_tokenize falls back to syllables")
            _tokenizer_missing = True
        else:
            _tokenizer = module.word_tokenize
    return _tokenizer


def word_tokenize(text: str) -> list[str]:
    """Segment ``text`` into words (multi-syllable words joined by a space).

    Uses ``underthesea.word_tokenize``; punctuation comes back as separate
    tokens. Falls back to :func:`syllables` when underthesea is missing.
    """
    text = nfc(text)
    if not text:
        return []
    tokenizer = _load_tokenizer()
    if tokenizer is None:
        return syllables(text)
    return [str(token) for token in tokenizer(text)]
