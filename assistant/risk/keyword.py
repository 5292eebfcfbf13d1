"""A plain keyword classifier: the baseline every better layer is measured against.

It looks for accent-folded keywords in the message alone, with no negation,
hyperbole or conversation handling. It is deliberately simple; it is what a
"keyword risk filter" in a plain RAG pipeline does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.risk.base import RiskAssessment
from assistant.text import NormalizedText

# category -> (severity when matched, folded keywords)
KEYWORDS: dict[str, tuple[int, tuple[str, ...]]] = {
    "sexual_abuse": (3, ("xam hai", "hiep dam", "cho kin", "so vao nguoi", "so mo", "cuong hiep", "lam dung")),
    "grooming": (3, ("gui anh", "anh nong", "gap rieng", "khong noi voi bo me", "dung noi voi ai", "bi mat nhe")),
    "sextortion": (3, ("tong tien", "doa tung anh", "doa phat tan", "neu khong gui tien", "nude")),
    "intimate_image_abuse": (3, ("phat tan anh", "tung clip", "lo clip", "quay len", "camera giau")),
    "self_harm": (3, ("tu tu", "muon chet", "tu sat", "rach tay", "cat tay", "khong muon song")),
    "violence": (3, ("danh dap", "bi danh", "bao luc", "nhot", "giet")),
    "trafficking": (3, ("ban sang", "buon ban nguoi", "viec nhe luong cao", "sang campuchia", "bi ban")),
    "cyberbullying": (2, ("bat nat", "che gieu", "noi xau", "tay chay", "body shaming")),
    "scam": (2, ("lua dao", "ma otp", "hack acc", "mat acc", "trung thuong", "bi lua")),
    "harmful_content": (2, ("khieu dam", "phim sex", "video kinh di", "thu thach nguy hiem")),
    "privacy": (2, ("lo dia chi", "lo thong tin", "lo so dien thoai", "chia se vi tri")),
    "excessive_use": (2, ("nghien game", "choi game ca ngay", "thuc khuya choi")),
}

_PATTERNS = {
    category: (severity, re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b"))
    for category, (severity, words) in KEYWORDS.items()
}


class KeywordRiskClassifier:
    """Matches folded keywords; no context, negation or hyperbole handling."""

    model_version = "keyword-1"

    def assess(
        self, message: NormalizedText, history: Sequence[NormalizedText] = ()  # noqa: ARG002 - one message alone
    ) -> RiskAssessment:
        scores: dict[str, float] = {}
        signals: list[str] = []
        best_category, best_severity = "none", 0
        for category, (severity, pattern) in _PATTERNS.items():
            match = pattern.search(message.folded)
            if match:
                scores[category] = 1.0
                signals.append(f"từ khóa '{match.group(0)}' ({category})")
                if severity > best_severity:
                    best_category, best_severity = category, severity
        return RiskAssessment(
            severity=best_severity,
            primary=best_category,
            categories=scores,
            signals=signals,
            model_version=self.model_version,
        )
