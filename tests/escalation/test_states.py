from __future__ import annotations

import pytest

from escalation import states
from escalation.errors import IllegalTransition

pytestmark = pytest.mark.unit

LEGAL = [
    ("pending_review", "approved", None),
    ("pending_review", "dismissed", "false alarm"),
    ("pending_review", "merged", None),
    ("approved", "sent", None),
    ("approved", "closed", "handled by phone"),
    ("sent", "acknowledged", None),
    ("sent", "closed", "done"),
    ("acknowledged", "closed", "case closed"),
]


@pytest.mark.parametrize(("current", "target", "reason"), LEGAL)
def test_legal_transitions(current: str, target: str, reason: str | None) -> None:
    states.check_transition(current, target, reason)


def test_every_other_transition_is_rejected_with_a_clear_error() -> None:
    legal = {(c, t) for c, t, _ in LEGAL} | {("approved", "dismissed"), ("approved", "merged")}
    checked = 0
    for current in states.STATUSES:
        for target in states.STATUSES:
            if (current, target) in legal:
                continue
            with pytest.raises(IllegalTransition) as info:
                states.check_transition(current, target, "a reason")
            assert current in info.value.message_en and target in info.value.message_en
            checked += 1
    print(f"checked {checked} illegal transitions")
    assert checked == 49 - len(legal)


@pytest.mark.parametrize("target", ["dismissed", "closed"])
def test_dismiss_and_close_need_a_reason(target: str) -> None:
    current = "pending_review" if target == "dismissed" else "acknowledged"
    for reason in (None, "", "   "):
        with pytest.raises(IllegalTransition, match="reason"):
            states.check_transition(current, target, reason)


def test_final_states_are_final() -> None:
    for final in states.FINAL_STATUSES:
        assert not states.TRANSITIONS[final]
