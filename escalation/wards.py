"""Đồng Nai's wards and communes (shipped as data) and a ward extractor for free text.

``data/dong_nai_wards.json`` is generated from ``vietnam-provinces`` by
``data/make_wards.py`` (95 wards and communes after the 2025 reorganisation).

The extractor works with and without diacritics. A ward name alone is often an
ordinary word ("bình minh", "thống nhất", "tân phú"), so a name counts only
after a cue: its type ("phường", "xã", "p.", "x.") or a place word ("ở",
"tại", "sống ở", "nhà ở"). Text with diacritics is matched exactly first; a
folded (accent-free) match that fits two wards ("Lộc Thành" / "Lộc Thạnh") is
reported as ambiguous, never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.text.normalize import fold_accents, normalize_tone_marks

WARDS_FILE = Path(__file__).resolve().parent / "data" / "dong_nai_wards.json"


@dataclass(frozen=True)
class Ward:
    code: int
    name: str  # "Phường Biên Hòa"
    type: str  # "phường" | "xã"

    @property
    def short_name(self) -> str:
        return self.name.split(" ", 1)[1]


@dataclass(frozen=True)
class WardMatch:
    ward: Ward | None
    text: str
    candidates: tuple[Ward, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return self.ward is None and len(self.candidates) > 1


@lru_cache(maxsize=1)
def load_wards() -> tuple[Ward, ...]:
    data = json.loads(WARDS_FILE.read_text(encoding="utf-8"))
    return tuple(Ward(int(w["code"]), str(w["name"]), str(w["type"])) for w in data["wards"])


@lru_cache(maxsize=1)
def wards_by_code() -> dict[int, Ward]:
    return {w.code: w for w in load_wards()}


def ward_by_code(code: int) -> Ward | None:
    return wards_by_code().get(code)


def _fold(text: str) -> str:
    return fold_accents(text).lower()


_TYPE_CUE = r"(?:phường|phuong|xã|xa|p\.|x\.|p|x)"
_PLACE_CUE = r"(?:ở|o|tại|tai|sống ở|song o|nhà ở|nha o|thuộc|thuoc)"


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    wards = load_wards()
    exact = sorted({w.short_name.lower() for w in wards}, key=len, reverse=True)
    folded = sorted({_fold(w.short_name) for w in wards}, key=len, reverse=True)

    def build(names: list[str]) -> re.Pattern[str]:
        alt = "|".join(re.escape(n) for n in names)
        return re.compile(
            rf"(?<!\w)(?:{_TYPE_CUE}\s*|{_PLACE_CUE}\s+(?:{_TYPE_CUE}\s*)?)(?P<name>{alt})(?!\w)",
            re.IGNORECASE,
        )

    return build(exact), build(folded)


def extract_ward(text: str) -> WardMatch | None:
    """The first ward or commune of Đồng Nai named in ``text`` after a cue, or None."""
    if not text:
        return None
    exact_re, folded_re = _patterns()
    text = normalize_tone_marks(text)  # NFC, and "Hoà" written as the data writes it ("Hòa")
    lowered = text.lower()
    m = exact_re.search(lowered)
    if m is not None:
        name = m.group("name")
        hits = tuple(w for w in load_wards() if w.short_name.lower() == name)
        return WardMatch(hits[0] if len(hits) == 1 else None, text[m.start("name") : m.end("name")], hits)
    folded = _fold(text)
    m = folded_re.search(folded)
    if m is None:
        return None
    name = m.group("name")
    hits = tuple(w for w in load_wards() if _fold(w.short_name) == name)
    # fold_accents keeps the length of Vietnamese text, so the span maps back.
    span = text[m.start("name") : m.end("name")] if len(folded) == len(text) else name
    return WardMatch(hits[0] if len(hits) == 1 else None, span, hits)
