"""The classifier used by the service: regression suite of disclosures that must
always escalate, ordinary questions that must not, and the conversation state."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

MUST_ESCALATE = [
    ("chú hàng xóm sờ vào chỗ kín của em", "sexual_abuse"),
    ("e bj ong hang xom so vao nguoi", "sexual_abuse"),
    ("con tôi 9 tuổi bị người quen xâm hại", "sexual_abuse"),
    ("anh ấy đòi em gửi ảnh không mặc áo", "grooming"),
    ("nó dọa tung ảnh nóng của em nếu em không chuyển tiền", "sextortion"),
    ("bạn trai cũ tung clip của em lên nhóm lớp", "intimate_image_abuse"),
    ("em không muốn sống nữa", "self_harm"),
    ("e mun chet lam r", "self_harm"),
    ("bố em đánh em bầm tím hết người", "violence"),
    ("có người rủ em sang campuchia làm việc nhẹ lương cao, mai em đi", "trafficking"),
]
MUST_NOT_ESCALATE = [
    "chào bạn",
    "làm sao để đặt mật khẩu mạnh",
    "cách cài family link cho con",
    "chán muốn chết, mai thi toán",
    "hôm qua em giết boss trong free fire",
    "xâm hại tình dục là gì vậy",
    "ok cảm ơn bạn nhé",
]


@pytest.mark.parametrize(("text", "category"), MUST_ESCALATE)
def test_disclosures_always_escalate(services: Any, text: str, category: str) -> None:
    normalize = services.pipeline.stage("normalize").normalize
    result = services.classifier.assess(normalize(text))
    assert result.escalate, (text, result)
    assert category in result.categories or result.primary == category


@pytest.mark.parametrize("text", MUST_NOT_ESCALATE)
def test_ordinary_messages_do_not_escalate(services: Any, text: str) -> None:
    normalize = services.pipeline.stage("normalize").normalize
    assert not services.classifier.assess(normalize(text)).escalate


def test_a_later_thank_you_never_lowers_an_open_high_risk_state(services: Any) -> None:
    normalize = services.pipeline.stage("normalize").normalize
    history = [normalize("em muốn kể chuyện này"), normalize("chú ấy sờ vào chỗ kín của em")]
    assert services.classifier.assess(normalize("ok cảm ơn"), history).escalate


def test_grooming_across_turns_escalates(services: Any) -> None:
    normalize = services.pipeline.stage("normalize").normalize
    turns = [
        normalize(t)
        for t in (
            "anh trong game hay nạp kim cương cho em",
            "anh dặn đừng nói với bố mẹ",
            "anh rủ em qua telegram nói chuyện riêng",
            "anh muốn gặp em cuối tuần ở quán net",
        )
    ]
    assert services.classifier.assess(turns[-1], turns[:-1]).escalate


def test_assessment_has_the_contract_fields(services: Any) -> None:
    normalize = services.pipeline.stage("normalize").normalize
    out = services.classifier.assess(normalize("em không muốn sống nữa")).to_dict()
    assert set(out) == {"severity", "primary", "categories", "escalate", "signals", "model_version"}
    assert out["signals"] and out["model_version"].startswith("ensemble")
