"""The ensemble: rules + trained model per message, then the conversation context.

Per message, a rule match at severity >= 3 escalates (rules carry the
reviewed lexicon, negation, hyperbole and imminence handling); otherwise the
model escalates when its calibrated probability passes the threshold tuned
for recall out-of-fold. Severity 4 needs an imminence signal from the rules
or the model's imminent head.

Over the conversation, the severity is the maximum of the earlier turns and
the current one (never lowered), grooming cues accumulate across turns, and
an announced disclosure lowers the escalation threshold for what follows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Any

from assistant.risk.base import RiskAssessment
from assistant.risk.context import conversation_signals
from assistant.risk.model import ModelRiskClassifier
from assistant.risk.rules import RuleHit, RulesRiskClassifier
from assistant.risk.taxonomy import HIGH_CATEGORIES, MODERATE_CATEGORIES
from assistant.text import NormalizedText

ANNOUNCED_THRESHOLD_FACTOR = 0.5
WEAK_RULE_FACTOR = 0.5
"""A weak rule escalates when the model gives at least half its threshold."""


class EnsembleRiskClassifier:
    def __init__(
        self,
        rules: RulesRiskClassifier,
        model: ModelRiskClassifier,
        cache_size: int = 4096,
    ) -> None:
        self.rules = rules
        self.model = model
        self.model_version = f"ensemble-1+{rules.model_version}+{model.model_version}"
        self._cache: OrderedDict[str, tuple[list[RuleHit], RiskAssessment, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    # -- one message ---------------------------------------------------------
    def _parts(self, message: NormalizedText) -> tuple[list[RuleHit], RiskAssessment, dict[str, Any]]:
        key = message.folded
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        hits = self.rules.hits(message.folded)
        parts = (hits, self.rules.from_hits(hits), self.model.score(message))
        with self._lock:
            self._cache[key] = parts
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return parts

    def message_level(self, message: NormalizedText, threshold_factor: float = 1.0) -> RiskAssessment:
        rule_hits, rules, scores = self._parts(message)
        model = self.model.model
        cats: dict[str, float] = dict(scores["categories"])
        for category, score in rules.categories.items():
            cats[category] = max(cats.get(category, 0.0), score)
        signals = list(rules.signals)
        p_esc, p_imm = scores["p_escalate"], scores["p_imminent"]
        threshold = model.threshold_escalate * threshold_factor
        strong = any(hit.rule.strong and hit.severity >= 3 for hit in rule_hits)
        if rules.severity >= 3 and (strong or p_esc >= threshold * WEAK_RULE_FACTOR):
            severity = 4 if rules.severity >= 4 or p_imm >= model.threshold_imminent else 3
            primary = rules.primary
        elif p_esc >= threshold:
            severity = 4 if p_imm >= model.threshold_imminent else 3
            high = {c: v for c, v in cats.items() if c in HIGH_CATEGORIES}
            primary = max(high, key=lambda c: high[c]) if high else "violence"
            signals.append(f"mô hình: khả năng cần chuyển tiếp {p_esc:.2f}")
        else:
            model_level = self.model.assess_scores(scores)
            if model_level.severity > rules.severity:
                severity, primary = model_level.severity, model_level.primary
                signals.extend(model_level.signals)
            else:
                severity, primary = rules.severity, rules.primary
            if primary in MODERATE_CATEGORIES:
                severity = min(severity, 2)
        return RiskAssessment(
            severity=severity,
            primary=primary if severity > 0 else "none",
            categories={c: round(v, 3) for c, v in cats.items() if v >= 0.2},
            signals=signals,
            model_version=self.model_version,
        )

    # -- the conversation -----------------------------------------------------
    def assess(
        self, message: NormalizedText, history: Sequence[NormalizedText] = ()
    ) -> RiskAssessment:
        ctx = conversation_signals([h.folded for h in history] + [message.folded])
        factor = ANNOUNCED_THRESHOLD_FACTOR if ctx.announced else 1.0
        current = self.message_level(message, factor)
        severity, primary = current.severity, current.primary
        signals = list(current.signals)
        categories = dict(current.categories)
        if ctx.announced and history:
            signals.append("ngữ cảnh: trẻ đã báo trước muốn kể chuyện")
        grooming = ctx.grooming_severity
        if grooming >= 3 and grooming > severity:
            severity, primary = grooming, "grooming"
            categories["grooming"] = max(categories.get("grooming", 0.0), grooming / 4)
            signals.append("ngữ cảnh: dấu hiệu dụ dỗ qua nhiều lượt (" + ", ".join(ctx.reasons()) + ")")
        for earlier in history:
            before = self.message_level(earlier)
            if before.severity > severity:
                severity, primary = before.severity, before.primary
                categories[primary] = max(categories.get(primary, 0.0), before.categories.get(primary, 0.0))
                signals.append("ngữ cảnh: cuộc trò chuyện đã có rủi ro cao trước đó")
        return RiskAssessment(
            severity=severity,
            primary=primary if severity > 0 else "none",
            categories=categories,
            signals=signals,
            model_version=self.model_version,
        )
