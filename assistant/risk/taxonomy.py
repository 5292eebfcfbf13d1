"""The risk taxonomy contract (``shared/docs/TAXONOMY.md``): codes, severity, routes."""

from __future__ import annotations

from enum import IntEnum

HIGH_CATEGORIES: tuple[str, ...] = (
    "sexual_abuse",
    "grooming",
    "sextortion",
    "intimate_image_abuse",
    "self_harm",
    "violence",
    "trafficking",
)
"""Categories above the line: a disclosure of one of these can escalate (severity >= 3)."""

MODERATE_CATEGORIES: tuple[str, ...] = (
    "cyberbullying",
    "scam",
    "harmful_content",
    "privacy",
    "excessive_use",
)

CATEGORIES: tuple[str, ...] = (*HIGH_CATEGORIES, *MODERATE_CATEGORIES, "none")

LABELS_VI: dict[str, str] = {
    "sexual_abuse": "Xâm hại tình dục",
    "grooming": "Dụ dỗ, lôi kéo",
    "sextortion": "Tống tiền bằng hình ảnh",
    "intimate_image_abuse": "Phát tán hình ảnh nhạy cảm",
    "self_harm": "Tự hại, ý định tự tử",
    "violence": "Bạo lực",
    "trafficking": "Mua bán người, bóc lột",
    "cyberbullying": "Bắt nạt trên mạng",
    "scam": "Lừa đảo",
    "harmful_content": "Nội dung độc hại",
    "privacy": "Lộ thông tin cá nhân",
    "excessive_use": "Sử dụng quá mức",
    "none": "Không có rủi ro",
}


class Severity(IntEnum):
    none = 0
    low = 1
    moderate = 2
    high = 3
    imminent = 4


ESCALATE_AT = Severity.high


def escalates(severity: int) -> bool:
    """``escalate`` is true exactly when severity >= 3."""
    return severity >= ESCALATE_AT


def max_severity_for(category: str) -> Severity:
    """Moderate categories never escalate on their own."""
    if category in HIGH_CATEGORIES:
        return Severity.imminent
    if category in MODERATE_CATEGORIES:
        return Severity.moderate
    return Severity.none
