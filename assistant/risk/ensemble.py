"""The ensemble: rules + trained model per message, then the conversation context.

Per message, a strong rule match at severity >= 3 escalates on its own (strong
rules carry the reviewed lexicon, negation, hyperbole and imminence handling,
and never fired on a negative of the train split). Otherwise the model's
stacked head decides: a logistic regression over the TF-IDF heads' scores (the
escalate head's and the kind head's, see :mod:`assistant.risk.model`) and
what the rules see (weak rule hits, asking about a topic, hyperbole, game
talk, imminence...), thresholded for 0.97 recall out-of-fold. A weak rule the
stacked head overrules keeps the message at severity 2 (counselor follow-up),
so nothing a rule noticed is dropped. Severity 4 needs an imminence signal
from the rules or the model's imminent head.

With a second opinion (:mod:`assistant.risk.second_opinion`: the fine-tuned
transformer and a combiner fitted on the train split), a message whose stacked
score reaches the gate is judged by the combined score of both models instead of
the stacked score alone; below the gate nothing changes.

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
from assistant.risk.context import ANNOUNCEMENT, conversation_signals
from assistant.risk.model import ModelRiskClassifier
from assistant.risk.rules import RuleHit, RulesRiskClassifier
from assistant.risk.second_opinion import SecondOpinion
from assistant.risk.taxonomy import HIGH_CATEGORIES
from assistant.text import NormalizedText

ANNOUNCED_THRESHOLD_FACTOR = 0.5


class EnsembleRiskClassifier:
    def __init__(
        self,
        rules: RulesRiskClassifier,
        model: ModelRiskClassifier,
        cache_size: int = 4096,
        second_opinion: tuple[Any, SecondOpinion] | None = None,
    ) -> None:
        self.rules = rules
        self.model = model
        self.second_opinion = second_opinion
        """(a ``TransformerRiskClassifier``, its fitted :class:`SecondOpinion`), or None."""
        self.model_version = f"ensemble-1+{rules.model_version}+{model.model_version}"
        if second_opinion is not None:
            self.model_version += f"+{second_opinion[0].model_version}"
        self._cache: OrderedDict[str, tuple[list[RuleHit], RiskAssessment, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    # -- one message ---------------------------------------------------------
    def _parts(self, message: NormalizedText) -> tuple[list[RuleHit], RiskAssessment, dict[str, Any]]:
        key = f"{message.folded}\x00{message.restored}"  # rules read the one, the model the other
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        hits = self.rules.hits(message.folded)
        features = self.rules.features(message.folded, hits)
        parts = (hits, self.rules.from_hits(hits), self.model.score(message, features))
        with self._lock:
            self._cache[key] = parts
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return parts

    def _escalation_score(
        self, message: NormalizedText, scores: dict[str, Any], threshold_factor: float
    ) -> tuple[float, float, str]:
        """(score, threshold, reason) that decide escalation when no strong rule did:
        the stacked head's, or above the gate the combined score of the second opinion."""
        p_stack: float = scores["p_stack"]
        if self.second_opinion is None:
            return p_stack, self.model.model.threshold_stack * threshold_factor, f"{p_stack:.2f}"
        transformer, opinion = self.second_opinion
        if p_stack < opinion.gate * threshold_factor:
            return 0.0, 1.0, f"{p_stack:.2f}"
        p_second = scores.get("p_second")
        if p_second is None:  # asked once per distinct message (the parts are cached)
            p_second = scores["p_second"] = float(transformer.escalate_probabilities([message])[0])
        combined = opinion.combine(p_stack, p_second)
        return combined, opinion.threshold * threshold_factor, f"{combined:.2f} (TF-IDF {p_stack:.2f}, transformer {p_second:.2f})"

    def message_level(self, message: NormalizedText, threshold_factor: float = 1.0) -> RiskAssessment:
        rule_hits, rules, scores = self._parts(message)
        model = self.model.model
        cats: dict[str, float] = dict(scores["categories"])
        for category, score in rules.categories.items():
            cats[category] = max(cats.get(category, 0.0), score)
        signals = list(rules.signals)
        p_imm = scores["p_imminent"]
        strong = any(hit.rule.strong and hit.severity >= 3 for hit in rule_hits)
        imminent = rules.severity >= 4 or p_imm >= model.threshold_imminent
        if rules.severity >= 3 and strong:
            severity = 4 if imminent else 3
            primary = rules.primary
        elif (decision := self._escalation_score(message, scores, threshold_factor))[0] >= decision[1]:
            severity = 4 if imminent else 3
            if rules.severity >= 3:
                primary = rules.primary
            else:
                high = {c: v for c, v in cats.items() if c in HIGH_CATEGORIES}
                primary = max(high, key=lambda c: high[c]) if high else "violence"
            signals.append(f"mô hình: khả năng cần chuyển tiếp {decision[2]}")
        else:
            model_level = self.model.assess_scores(scores)
            if model_level.severity > rules.severity:
                severity, primary = model_level.severity, model_level.primary
                signals.extend(model_level.signals)
            else:
                severity, primary = rules.severity, rules.primary
            # Below the escalation threshold: at most a follow-up flag, also
            # when a weak rule matched (the stacked head weighed it already).
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
        folded = [h.folded for h in history]
        ctx = conversation_signals([*folded, message.folded])
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
        current_escalates = severity >= 3
        prior_escalated = False
        announced_before = False
        for earlier, text in zip(history, folded, strict=True):
            # An earlier turn is judged as it was then: after an announcement,
            # with the lowered threshold, so a disclosure caught that way stays.
            before = self.message_level(earlier, ANNOUNCED_THRESHOLD_FACTOR if announced_before else 1.0)
            announced_before = announced_before or bool(ANNOUNCEMENT.search(text))
            prior_escalated = prior_escalated or before.severity >= 3
            if before.severity > severity:
                severity, primary = before.severity, before.primary
                categories[primary] = max(categories.get(primary, 0.0), before.categories.get(primary, 0.0))
                signals.append("ngữ cảnh: cuộc trò chuyện đã có rủi ro cao trước đó")
        if history and conversation_signals(folded).grooming_severity >= 3:
            prior_escalated = True
            current_escalates = current.severity >= 3
        return RiskAssessment(
            severity=severity,
            primary=primary if severity > 0 else "none",
            categories=categories,
            signals=signals,
            model_version=self.model_version,
            carried=severity >= 3 and prior_escalated and not current_escalates,
        )
