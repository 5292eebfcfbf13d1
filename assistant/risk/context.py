"""Conversation context: the whole conversation is the unit of risk.

- **Grooming cues** accumulate over turns (secrecy, gifts/top-ups, moving to a
  private app, compliments and age, requests for photos, a meeting). Each turn
  alone can look harmless; three distinct cues including photos or a meeting
  make the conversation severity 3, and a meeting today or tonight makes it 4.
- An **announced disclosure** ("em muốn kể chuyện này", "hứa không nói ai nhé")
  lowers the model's escalation threshold for the turns that follow.
- The conversation's severity **never drops**: a later "ok cảm ơn" keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

GROOMING_CUES: dict[str, re.Pattern[str]] = {
    "secrecy": re.compile(
        r"\b(?:dung|khong duoc|(?<!nhay )cam|dung co)\s+(?:\w+\s+){0,2}(?:noi|ke|cho)\s+(?:\w+\s+){0,2}(?:bo me|ba me|bo|me|ai|nguoi lon|thay co|gia dinh)"
        r"|\bbi mat (?:cua )?(?:hai|2) (?:dua|anh em|chung ta|ta)|\bchuyen rieng (?:cua )?(?:hai|2|chung ta)|\bgiu bi mat\b|\bxoa (?:het )?tin nhan\b"
    ),
    "gifts": re.compile(
        r"\b(?:nap|tang|cho|mua|gui)\s+(?:\w+\s+){0,3}(?:the|kim cuong|kc|quan huy|skin|robux|uc|tien|qua|dien thoai|do)\b"
        r"|\b(?:chuyen khoan|chuyen tien) cho (?:em|minh)\b|\bnap game\b"
    ),
    "private_app": re.compile(
        r"\b(?:qua|sang|chuyen qua|ib|nhan rieng|add|ket ban)\s+(?:\w+\s+){0,2}(?:telegram|tele|zalo rieng|discord|signal|whatsapp|snap|snapchat|acc phu|nick phu|nhom rieng)\b"
        r"|\bnhan rieng\b|\bchat rieng\b|\bib rieng\b"
    ),
    "flattery_age": re.compile(
        r"\b(?:xinh|de thuong|dang yeu|truong thanh|chin chan|hieu chuyen|nguoi lon hon)\b(?:\s+\w+){0,4}"
        r"|\b(?:anh|chu|ong)\s+(?:\w+\s+){0,2}\d\d\s*(?:tuoi|t)\b|\bem may tuoi\b|\bem hoc lop may\b|\bo nha mot minh\b|\bbo me (?:em )?di vang\b"
    ),
    "photos": re.compile(
        r"\b(?:gui|chup|quay|cho xem|show|video call|call video|goi video|facetime|mo cam)\s+(?:\w+\s+){0,4}"
        r"(?:anh|hinh|clip|video|nguoi|than|mat|cam)\b|\bvideo call\b|\bmo cam\b"
    ),
    "meeting": re.compile(
        r"\b(?:gap|hen|don|ru|ra gap|di choi|qua nha|den nha|ghe nha)\s+(?:\w+\s+){0,4}"
        r"(?:nhau|em|minh|rieng|quan|cong vien|quan net|khach san|nha nghi|cuoi tuan|toi nay|chieu nay|mai|truong)\b"
        r"|\bgap (?:nhau|rieng|truc tiep|ngoai doi)\b"
    ),
}
SOON = re.compile(r"\b(?:toi nay|dem nay|chieu nay|hom nay|bay gio|lat nua|ti nua|sang mai|ngay mai|dang di|dang den|sap den|sap gap)\b")
ANNOUNCEMENT = re.compile(
    r"\b(?:muon ke|ke cho (?:nghe|ban nghe)|co chuyen (?:nay|muon noi)|muon noi (?:chuyen|cai nay)|hua (?:la )?(?:khong|dung|ko) (?:noi|ke)"
    r"|giu bi mat (?:nhe|nha|duoc khong)|dung noi voi ai|kho noi lam|ngai (?:noi|ke) qua|so (?:noi|ke) ra)\b"
)


@dataclass(frozen=True)
class ContextSignals:
    cues: frozenset[str]
    soon: bool
    announced: bool

    @property
    def grooming_severity(self) -> int:
        strong = self.cues & {"photos", "meeting"}
        if len(self.cues) >= 3 and strong:
            if "meeting" in self.cues and self.soon:
                return 4
            return 3
        if len(self.cues) >= 2 and strong:
            return 2
        return 1 if self.cues else 0

    def reasons(self) -> list[str]:
        names = {
            "secrecy": "giữ bí mật",
            "gifts": "quà, nạp thẻ",
            "private_app": "chuyển sang kênh riêng",
            "flattery_age": "khen ngợi, hỏi tuổi",
            "photos": "đòi ảnh/video",
            "meeting": "hẹn gặp",
        }
        return [names[c] for c in sorted(self.cues)]


def grooming_cues(folded: str) -> set[str]:
    return {name for name, pattern in GROOMING_CUES.items() if pattern.search(folded)}


def conversation_signals(folded_turns: Iterable[str]) -> ContextSignals:
    """Signals over the given turns (earlier turns first, the current one last)."""
    turns = [" ".join(t.lower().split()) for t in folded_turns]
    cues: set[str] = set()
    for turn in turns:
        cues |= grooming_cues(turn)
    soon = bool(turns) and bool(SOON.search(turns[-1])) and bool(grooming_cues(turns[-1]) & {"meeting"})
    announced = any(ANNOUNCEMENT.search(t) for t in turns[:-1])
    return ContextSignals(frozenset(cues), soon, announced)
