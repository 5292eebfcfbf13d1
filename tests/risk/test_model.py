"""Thresholds of the trained TF-IDF layer (pure functions, no training)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.risk.model import imminent_threshold


def test_imminent_threshold_counts_rule_hits_as_recalled() -> None:
    # 1,000 imminent escalations, the head scoring them 0.1..1.0 (100 each), and
    # 500 severity-3 ones scoring 0.05..0.45. (Fewer than MIN_SUBGROUP_POSITIVES
    # positives would fall back to a fixed threshold.)
    imminent = np.repeat(np.linspace(0.1, 1.0, 10), 100)
    severe = np.repeat(np.linspace(0.05, 0.45, 5), 100)
    scores = np.concatenate([imminent, severe])
    positives = np.arange(1500) < 1000
    rule = np.zeros(1500, dtype=bool)
    alone, recall_alone = imminent_threshold(scores, rule, positives, target=0.85)
    assert 0.1 < alone <= 0.2 and recall_alone == 0.9  # the head alone must reach down to 0.2
    rule[:400] = True  # the rules catch the imminent messages scored 0.1-0.4
    with_rules, recall = imminent_threshold(scores, rule, positives, target=0.85)
    # The head now only needs 0.6 and above: no severity-3 message is rated
    # imminent any more, and the union still holds the target.
    assert 0.5 < with_rules <= 0.6 and recall == 0.9
    assert (severe >= with_rules).sum() == 0 and (severe >= alone).sum() == 300


def test_imminent_threshold_holds_each_subgroup() -> None:
    rng = np.random.default_rng(3)
    easy = rng.uniform(0.5, 1.0, 600)  # one style: the head separates it well
    hard = rng.uniform(0.0, 1.0, 600)  # another: scores spread all the way down
    scores = np.concatenate([easy, hard])
    positives = np.ones(1200, dtype=bool)
    groups = [np.arange(1200) < 600, np.arange(1200) >= 600]
    rule = np.zeros(1200, dtype=bool)
    overall, _ = imminent_threshold(scores, rule, positives, target=0.98)
    per_group, recall = imminent_threshold(scores, rule, positives, groups, target=0.98)
    assert per_group < overall  # the hard style binds
    assert (hard >= per_group).mean() >= 0.98 and (easy >= per_group).mean() >= 0.98 and recall >= 0.98


def test_kind_labels_cross_the_primary_category_with_escalation() -> None:
    from assistant.risk.model import Example, kind_labels

    examples = [
        Example("bố đánh em chảy máu", 3, ["violence"]),
        Example("em bị bố đánh vì về muộn hôm qua, giờ ổn rồi", 2, ["violence"]),
        Example("giết boss khó chết mất", 0, []),
        Example("nó đang ở trước nhà em, em sợ lắm", 4, ["violence", "grooming"]),
    ]
    assert kind_labels(examples).tolist() == ["violence:escalate", "violence:low", "none:low", "violence:escalate"]


def test_stack_inputs_put_the_kind_head_on_the_logit_scale() -> None:
    from assistant.risk.model import stack_inputs

    z = stack_inputs(np.array([1.5, -2.0]), np.array([0.5, 0.0]), [[1.0, 0.0], [0.0, 1.0]])
    assert z.shape == (2, 4)
    assert z[0].tolist() == [1.5, 0.0, 1.0, 0.0]
    assert z[1, 1] == pytest.approx(np.log(1e-6 / (1 - 1e-6)))  # clipped, never -inf
