"""Every rule's own positive and negative examples, plus the modifiers."""

from __future__ import annotations

import pytest

from assistant.risk.rules import RULES, RulesRiskClassifier
from assistant.text import normalize

pytestmark = pytest.mark.unit
CLF = RulesRiskClassifier()


def rule_ids(text: str) -> set[str]:
    return {h.rule.id for h in CLF.hits(normalize(text).folded) if h.severity >= 2}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_has_examples(rule: object) -> None:
    assert rule.positives and rule.negatives  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("rule_id", "text"), [(r.id, t) for r in RULES for t in r.positives], ids=lambda v: str(v)[:40]
)
def test_rule_matches_its_positive_examples(rule_id: str, text: str) -> None:
    assert rule_id in rule_ids(text)


@pytest.mark.parametrize(
    ("rule_id", "text"), [(r.id, t) for r in RULES for t in r.negatives], ids=lambda v: str(v)[:40]
)
def test_rule_ignores_its_negative_examples(rule_id: str, text: str) -> None:
    assert rule_id not in rule_ids(text)


@pytest.mark.parametrize(
    "text",
    ["em không muốn sống nữa", "em khong muon song nua", "e ko mun song nua"],
)
def test_same_disclosure_in_every_writing_style(text: str) -> None:
    assert CLF.assess(normalize(text)).severity >= 3


@pytest.mark.parametrize(
    "text",
    ["chán muốn chết", "kho chet mat", "thi xong chắc chết", "cười muốn xỉu", "hôm nay giết boss 3 lần"],
)
def test_hyperbole_and_game_talk_do_not_escalate(text: str) -> None:
    assert CLF.assess(normalize(text)).severity < 3


@pytest.mark.parametrize(
    "text",
    [
        "xâm hại tình dục là gì",
        "em làm bài thuyết trình về phòng chống xâm hại",
        "đọc báo thấy vụ học sinh bị đánh hội đồng",
        "nếu có ai chạm vào vùng kín của mình thì phải làm gì",
    ],
)
def test_talking_about_a_topic_is_capped_at_low(text: str) -> None:
    assert CLF.assess(normalize(text)).severity <= 1


def test_negation_drops_the_match() -> None:
    assert CLF.assess(normalize("không ai đánh em cả, em ổn")).severity < 3


def test_imminence_raises_to_4() -> None:
    result = CLF.assess(normalize("tối nay ông ấy lại đến, ông ấy sẽ sờ vào chỗ kín của em"))
    assert result.severity == 4 and result.primary == "sexual_abuse"


def test_self_harm_plan_is_imminent() -> None:
    result = CLF.assess(normalize("em đã chuẩn bị thuốc ngủ rồi, tối nay em sẽ uống hết"))
    assert result.severity == 4 and result.primary == "self_harm"
