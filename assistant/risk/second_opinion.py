"""The ensemble's second opinion: the fine-tuned transformer, asked about plausible messages.

The TF-IDF stacked head and the fine-tuned multilingual-e5-small
(:mod:`assistant.risk.transformer`) make different mistakes. On the
transformer's validation part of the train split (5,857 messages, batches 1-7),
at 0.97 recall, the fitted combination falsely escalates 2.6% of the hard
negatives against 4.9% for the stacked head alone; at 0.975, 3.1%; at 0.98 (where
the threshold below sets it, held by text without diacritics), 3.9% (held-out
figures: CHANGELOG).
The transformer runs as an int8 ONNX export (``onnx-int8``); torch's own int8
quantisation, used before, lost most of that gain (4.0%). Asking it costs
~15 ms per message on one core of a CPU without AVX-512 (less with VNNI)
against ~1 ms for the rest of the risk stage, so it is asked only when the stacked head
finds a message plausible: ``p_stack >= gate``, where the gate keeps
``GATE_RECALL`` of the train split's positives out-of-fold. Above the gate a
logistic combiner over both logits decides, with its threshold set for
``TARGET_OOF_RECALL`` over all the validation positives (those below the gate
count as misses) and within each writing style and severity 4, as the stacked
head's threshold is (format 2; format 1 held it overall only, and gave 0.966
recall and 0.947 severity-4 recall on the held-out split, below the ensemble
alone: an optional layer must not cost recall). Below the gate nothing changes.

Fitted only on the train split: the combiner sees the TF-IDF head's out-of-fold
scores (stored with the TF-IDF model) and the transformer's scores on its own
validation part, which it was not trained on. The fit is tied to both model
versions and the transformer's engine, and redone (about two minutes) when one changes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, logit

from assistant.risk.base import ModelNotTrained, read_sidecar
from assistant.risk.model import CORPUS_FILE, TARGET_OOF_RECALL, RiskModel, load_corpus

log = logging.getLogger(__name__)

SECOND_OPINION_FILE = "second_opinion.json"
SECOND_OPINION_FORMAT = 2
GATE_RECALL = 0.995
"""Share of the train split's positives (out-of-fold) whose stacked score reaches the gate."""
MIN_SUBGROUP_POSITIVES = 200
"""A subgroup (a writing style, severity 4) sets the threshold when the validation part
holds at least this many of its positives (the stacked head uses 500 over the whole train split)."""
_EPS = 1e-6


def _logit(p: Any) -> Any:
    return logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS))


@dataclass
class SecondOpinion:
    """Gate, combiner and threshold (``second_opinion.json`` beside the transformer checkpoint)."""

    gate: float
    coef: list[float]
    intercept: float
    threshold: float
    tfidf_version: str
    transformer_version: str
    format: int = SECOND_OPINION_FORMAT
    transformer_engine: str = ""
    """The engine whose scores it was fitted on (``onnx-int8``): another engine's scores
    differ slightly, so a fit from an older engine is redone."""
    metrics: dict[str, Any] = field(default_factory=dict)

    def combine(self, p_stack: float, p_transformer: float) -> float:
        z = self.coef[0] * float(_logit(p_stack)) + self.coef[1] * float(_logit(p_transformer)) + self.intercept
        return float(expit(z))

    def save(self, directory: Path) -> None:
        path = Path(directory) / SECOND_OPINION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> SecondOpinion:
        return cls(**read_sidecar(Path(directory) / SECOND_OPINION_FILE, SECOND_OPINION_FORMAT, "risk second opinion"))


def fit_second_opinion(
    oof_stack: np.ndarray,
    p_transformer: np.ndarray,
    val_index: np.ndarray,
    escalate: np.ndarray,
    hard_negative: np.ndarray,
    groups: np.ndarray,
    tfidf_version: str,
    transformer_version: str,
    target_recall: float = TARGET_OOF_RECALL,
    seed: int = 13,
    subgroups: dict[str, np.ndarray] | None = None,
) -> SecondOpinion:
    """Fit the gate (on every train message) and the combiner (on the transformer's
    validation part: ``p_transformer[i]`` scores message ``val_index[i]``).

    ``subgroups`` (boolean masks over every train message, e.g. one per writing
    style and one for severity 4) hold the threshold to ``target_recall`` in each
    of them too, as the stacked head's own threshold does, so that no kind of
    message is left below the target."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    from assistant.risk.transformer import threshold_for_recall

    escalate = np.asarray(escalate, dtype=int)
    if len(oof_stack) != len(escalate):
        raise ValueError("oof_stack must score every train message")
    gate = threshold_for_recall(oof_stack, escalate == 1, GATE_RECALL)
    s, y = oof_stack[val_index], escalate[val_index]
    hard = np.asarray(hard_negative, dtype=bool)[val_index]
    val_groups = np.asarray(groups)[val_index]
    z = np.column_stack([_logit(s), _logit(p_transformer)])
    above = s >= gate
    if y[above].min(initial=1) == y[above].max(initial=0):
        raise ValueError("the validation part needs positives and negatives above the gate")

    def combiner() -> LogisticRegression:
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed)

    # The threshold comes from out-of-fold combined scores (grouped, so variants of
    # one sentence never straddle); below the gate a message scores 0 (a miss).
    folds = min(5, int(np.bincount(y[above]).min()), len(set(val_groups[above])))
    if folds < 2:
        raise ValueError("too few validation messages above the gate to fit the combiner")
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(y))
    oof[above] = cross_val_predict(
        combiner(), z[above], y[above], cv=cv, groups=val_groups[above], method="predict_proba"
    )[:, 1]
    masks = {"all": np.ones(len(y), dtype=bool)}
    for name, mask in (subgroups or {}).items():
        if len(mask) != len(escalate):
            raise ValueError(f"subgroup {name!r} must mark every train message")
        mask = np.asarray(mask, dtype=bool)[val_index]
        if (mask & (y == 1)).sum() >= MIN_SUBGROUP_POSITIVES:
            masks[name] = mask
    threshold = min(threshold_for_recall(oof, (y == 1) & mask, target_recall) for mask in masks.values())
    final = combiner().fit(z[above], y[above])
    escalated = oof >= threshold
    stack_alone = s >= threshold_for_recall(s, y == 1, target_recall)

    def fe(pred: np.ndarray) -> float:
        return round(float((pred & hard & (y == 0)).sum() / max(1, (hard & (y == 0)).sum())), 4)

    metrics = {
        "val_examples": len(val_index),
        "val_share_above_gate": round(float(above.mean()), 4),
        "val_recall": round(float(escalated[y == 1].mean()), 4),
        "val_false_escalation_hard": fe(escalated),
        "val_false_escalation_hard_stack_alone": fe(stack_alone),
        "val_recall_by_subgroup": {
            name: round(float(escalated[(y == 1) & mask].mean()), 4) for name, mask in masks.items() if name != "all"
        },
    }
    return SecondOpinion(
        gate=float(gate),
        coef=[float(c) for c in final.coef_[0]],
        intercept=float(final.intercept_[0]),
        threshold=float(threshold),
        tfidf_version=tfidf_version,
        transformer_version=transformer_version,
        metrics=metrics,
    )


def threshold_subgroups(examples: list[Any]) -> dict[str, np.ndarray]:
    """Where the recall target must hold besides overall: each writing style and
    severity 4 (imminent danger, whose recall the eval reports on its own)."""
    styles = np.array([e.style for e in examples])
    groups = {f"style:{v}": styles == v for v in sorted(set(styles)) if v}
    groups["severity:4"] = np.array([e.severity >= 4 for e in examples])
    return groups


def load_or_fit(
    transformer: Any,
    tfidf: RiskModel,
    normalize: Callable[[str], Any],
    corpus: Path = CORPUS_FILE,
) -> SecondOpinion:
    """The second opinion for this pair of models, fitting it once if missing or stale.

    ``transformer`` is a :class:`~assistant.risk.transformer.TransformerRiskClassifier`
    (scores as it will at run time, with the same engine); ``normalize`` gives a ``NormalizedText``."""
    from assistant.risk.transformer import internal_split, targets

    directory = transformer.directory
    engine = getattr(transformer, "engine_name", "")
    try:
        current = SecondOpinion.load(directory)
        if (current.tfidf_version, current.transformer_version, current.transformer_engine) == (
            tfidf.version,
            transformer.meta.version,
            engine,
        ):
            return current
    except ModelNotTrained:
        pass
    if tfidf.oof_stack is None:
        raise ModelNotTrained("the TF-IDF model has no out-of-fold scores: retrain it (`risk train --force`)")
    started = time.perf_counter()
    examples = load_corpus(corpus, split="train")
    if len(examples) != len(tfidf.oof_stack):
        raise ModelNotTrained("the TF-IDF model was trained on another corpus: retrain it")
    cfg = transformer.meta.train_config
    y_all = targets([e.severity for e in examples], [e.categories for e in examples])
    group_names = [e.group for e in examples]
    _, val_index = internal_split(
        y_all[:, 0].astype(int), group_names, int(cfg.get("seed", 13)), int(cfg.get("val_folds", 5))
    )
    p_val = transformer.escalate_probabilities([normalize(examples[i].text) for i in val_index])
    fitted = fit_second_opinion(
        np.asarray(tfidf.oof_stack, dtype=np.float64),
        p_val,
        val_index,
        y_all[:, 0],
        np.array([e.hard_negative for e in examples]),
        np.array(group_names),
        tfidf.version,
        transformer.meta.version,
        subgroups=threshold_subgroups(examples),
    )
    fitted.transformer_engine = engine
    fitted.metrics["fit_seconds"] = round(time.perf_counter() - started, 1)
    fitted.save(directory)
    log.info("risk second opinion fitted", extra=fitted.metrics)
    return fitted
