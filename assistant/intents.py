"""Small-talk intents recognised before retrieval: greetings, thanks, goodbyes…

Matched on the accent-folded, teen-code-expanded text, so "chao ban", "hello",
"cam on nha", "tks" and "bn là ai" are all understood. A message is small talk
only when it is short and nothing else is asked; a longer message goes on to
retrieval even if it starts with "chào".
"""

from __future__ import annotations

import re

_INTENT_PATTERNS: dict[str, re.Pattern[str]] = {
    "secrecy_request": re.compile(
        r"\b(hua|giu bi mat|dung noi (voi|cho) ai|khong (duoc )?noi (voi|cho) ai|bi mat nhe|dung ke (voi|cho) ai)\b"
    ),
    "greeting": re.compile(r"^(xin )?(chao|hello|hi|helo|hey|alo|a lo|hi there)\b"),
    "thanks": re.compile(r"\b(cam on|cam ơn|thank|thanks|thank you|tks|thanks nha|cam on nhieu)\b"),
    "goodbye": re.compile(r"\b(tam biet|bye|bai bai|pp|goodbye|hen gap lai)\b"),
    "who_are_you": re.compile(
        r"\b(ban|may|em|ad|bot) la (ai|gi|nguoi that|nguoi hay may)\b|\bten (ban|cua ban|may) la gi\b|\bai day\b"
    ),
}

SMALL_TALK_MAX_WORDS = 7
_FILLER = re.compile(r"\b(ban|nhe|nha|a|ak|ah|oi|minh|em|anh|chi|to|cau|bot|nhieu|lam|ne|nhe|ha)\b")


def detect_intent(folded: str) -> str | None:
    """The small-talk intent of a folded message, or ``None`` if it is a real question."""
    text = " ".join(folded.lower().split())
    words = re.findall(r"\w+", text)
    if not words:
        return "unclear"
    if _INTENT_PATTERNS["secrecy_request"].search(text):
        return "secrecy_request"
    if len(words) > SMALL_TALK_MAX_WORDS:
        return None
    for intent in ("who_are_you", "thanks", "goodbye", "greeting"):
        match = _INTENT_PATTERNS[intent].search(text)
        if match:
            rest = _FILLER.sub(" ", text[: match.start()] + " " + text[match.end() :])
            if intent == "who_are_you" or len(re.findall(r"\w+", rest)) <= 2:
                return intent
    if all(not any(ch.isalpha() for ch in w) for w in words) or (len(words) == 1 and len(words[0]) <= 2):
        return "unclear"
    return None
