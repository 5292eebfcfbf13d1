"""The held-out risk metrics (``eval risk``) computed on a hand-made set."""

from __future__ import annotations

from assistant.risk.base import RiskAssessment
from evaluation.risk import message_metrics


def _row(severity: int, primary: str, style: str = "diacritics", hard: bool = False) -> dict[str, object]:
    return {"severity": severity, "primary": primary, "style": style, "hard_negative": hard}


def _pred(severity: int, primary: str) -> RiskAssessment:
    return RiskAssessment(severity=severity, primary=primary, categories={}, signals=[], model_version="t")


def test_message_metrics_count_escalations_false_alarms_and_the_primary_category() -> None:
    rows = [
        _row(4, "self_harm"),  # caught, right category, severity 4 kept
        _row(3, "grooming", style="teencode"),  # caught, wrong category
        _row(3, "violence", style="no_diacritics"),  # missed
        _row(0, "none", hard=True),  # hyperbole: false escalation
        _row(1, "cyberbullying", hard=True),  # asked about: correctly not escalated
    ]
    preds = [
        _pred(4, "self_harm"),
        _pred(3, "sexual_abuse"),
        _pred(2, "violence"),
        _pred(3, "self_harm"),
        _pred(1, "cyberbullying"),
    ]
    m = message_metrics(rows, preds)
    assert m["escalation"]["all"] == {"recall": round(2 / 3, 4), "precision": round(2 / 3, 4), "positives": 3, "n": 5}
    assert m["escalation"]["no_diacritics"]["recall"] == 0.0
    assert m["false_escalation_hard_negatives"] == {"rate": 0.5, "n": 2}
    assert m["severity4"]["recall_at_4"] == 1.0
    # Of the two disclosures escalated, one names the right category.
    assert m["primary_when_escalated"] == {"accuracy": 0.5, "n": 2}
    assert m["per_category"]["self_harm"] == {"precision": 0.5, "recall": 1.0, "f1": round(2 / 3, 4), "support": 1}
