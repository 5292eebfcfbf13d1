from __future__ import annotations

import pytest

from assistant.prompts import default_prompts
from assistant.text import fold_accents

pytestmark = pytest.mark.unit
DISCLOSURE_KEYS = [
    "disclosure",
    "disclosure_imminent",
    "disclosure_self_harm",
    "disclosure_self_harm_imminent",
]


@pytest.mark.parametrize("key", DISCLOSURE_KEYS)
@pytest.mark.parametrize("audience", ["child", "parent"])
def test_disclosure_replies_follow_the_safety_rules(key: str, audience: str) -> None:
    text = default_prompts().text(key, audience)
    folded = fold_accents(text).lower()
    assert "111" in text
    if key.endswith("imminent"):
        assert "113" in text or "115" in text
    for banned in ("giu bi mat", "hua se khong noi", "gui anh", "gui hinh", "chup anh", "loi cua em"):
        if banned == "loi cua em":
            assert "khong phai loi cua em" in folded or banned not in folded
        else:
            assert banned not in folded, banned


def test_secrecy_request_never_promises_secrecy() -> None:
    text = fold_accents(default_prompts().text("secrecy_request", "child")).lower()
    assert "khong the hua giu bi mat" in text


def test_every_intent_has_both_audiences() -> None:
    book = default_prompts()
    for intent in ("greeting", "thanks", "goodbye", "who_are_you", "no_answer", "unclear", *DISCLOSURE_KEYS):
        assert book.text(intent, "child") and book.text(intent, "parent")
