"""Conversation context: grooming cues accumulate, announcements carry forward."""

from __future__ import annotations

import pytest

from assistant.risk.context import conversation_signals, grooming_cues
from assistant.text import normalize

pytestmark = pytest.mark.unit


def folded(*turns: str) -> list[str]:
    return [normalize(t).folded for t in turns]


def test_each_grooming_turn_alone_is_harmless_but_the_pattern_escalates() -> None:
    turns = folded(
        "anh ấy nạp kim cương cho em",
        "anh dặn đừng nói với bố mẹ nhé",
        "anh rủ em qua telegram nói chuyện riêng",
        "anh bảo gửi ảnh em mặc đồ bơi",
    )
    for turn in turns:
        assert conversation_signals([turn]).grooming_severity < 3
    assert conversation_signals(turns).grooming_severity == 3


def test_a_meeting_tonight_makes_it_imminent() -> None:
    turns = folded(
        "anh ấy tặng skin cho em",
        "anh bảo đừng kể với ai",
        "tối nay anh hẹn gặp em ở quán net",
    )
    assert conversation_signals(turns).grooming_severity == 4


def test_announced_disclosure_is_remembered() -> None:
    signals = conversation_signals(folded("em muốn kể chuyện này", "bạn hứa không nói ai nhé", "chú ấy..."))
    assert signals.announced


def test_no_cues_in_ordinary_chat() -> None:
    assert grooming_cues(normalize("hôm nay em đi học vui lắm").folded) == set()
    assert conversation_signals(folded("chào", "làm sao đổi mật khẩu")).grooming_severity == 0


def test_nhay_cam_is_not_a_ban_on_telling() -> None:
    """"cấm" (forbid) folds to "cam", as does the second syllable of "nhạy cảm" (sensitive)."""
    assert "secrecy" in grooming_cues(normalize("anh ấy cấm nói cho bố mẹ").folded)
    assert "secrecy" in grooming_cues(normalize("a ay cam ke cho ai").folded)
    parent = "Tôi muốn nói với cháu chuyện không gửi ảnh nhạy cảm cho ai nhưng ngại quá, nên bắt đầu thế nào?"
    assert "secrecy" not in grooming_cues(normalize(parent).folded)
    assert "secrecy" not in grooming_cues(normalize("khong gui anh nhay cam cho bat ky ai").folded)
