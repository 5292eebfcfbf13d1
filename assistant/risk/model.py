"""Trained layer: character and word n-gram TF-IDF + calibrated linear models.

Features (:func:`risk_inputs`) are character 2-5-grams and word 1-3-grams of
the teen-code-expanded, accent-restored text in lower case (:func:`risk_text`),
plus word bigrams of the accent-folded text. Restoring accents before the model
keeps "chết" and "chét" apart (grouped cross-validation of the train split:
false escalation on hard negatives 0.195 at 0.97 recall, against 0.220 on
accent-folded text); the folded bigrams add back what a wrong restoration
breaks ("toi nay" restored as "tôi nay", "vo yeu" as "vô yếu"): with them, the
stacked head's false escalation on hard negatives at 0.97 recall went 0.121 ->
0.094 (grouped 5-fold CV of the train split, mean of 4 fold seeds, at equal
recall; folded unigrams instead: 0.122, folded char n-grams as well: 0.119). The
heads share the features:

- ``escalate``: P(severity >= 3), a calibrated logistic regression (the
  "model only" layer);
- ``kind``: a multinomial logistic regression over the primary category crossed
  with escalation (``self_harm:escalate``, ``self_harm:low``, ..., ``none:low``),
  unweighted. It contrasts a disclosure with harmless talk on the same topic,
  where the escalate head mostly learns which words are risky;
- ``stack``: the ensemble's escalation head, a logistic regression over the
  escalate head's score, the kind head's P(escalate) and what the rules see
  (:meth:`RulesRiskClassifier.features`): hits, asking-about-a-topic, hyperbole,
  game talk, imminence... Trained on out-of-fold scores, so it learns how far to
  trust each. Out of fold on the train split (batches 1-7, thresholds held in
  every writing style): false escalation on hard negatives 0.060 at recall 0.976
  without the kind head, 0.043 at 0.980 with it (``KIND_FOLDS``); on batches 1-3,
  without it, 0.106 (the TF-IDF head alone: 0.117);
- ``imminent``: P(severity == 4), a calibrated logistic regression;
- ``category``: one-vs-rest logistic regressions over the taxonomy codes.

Training (``python -m assistant risk train``) is deterministic and reads only
the ``train`` split of the shipped corpus; thresholds are tuned on
out-of-fold predictions of that split (never on the held-out split) for 0.97
recall overall and within every writing style that has at
least ``MIN_SUBGROUP_POSITIVES`` positives (the strictest wins, so no large
kind of message is left below the target by a threshold fitted to the mix). The
artifact is versioned by a hash of the corpus, this module, the rules and the
text layer (normaliser and accent model) and cached under
``<data_dir>/models/risk/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

from assistant.risk import rules as rules_module
from assistant.risk.base import ModelNotTrained, RiskAssessment
from assistant.risk.rules import RulesRiskClassifier
from assistant.risk.taxonomy import CATEGORIES, HIGH_CATEGORIES, MODERATE_CATEGORIES
from assistant.text import NormalizedText, has_diacritics
from assistant.tfidf import SparseRow, tfidf_row, tfidf_transform

log = logging.getLogger(__name__)

MODEL_FORMAT = 5
CORPUS_FILE = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "risk" / "messages.jsonl"
TARGET_OOF_RECALL = 0.97
TARGET_OOF_IMMINENT_RECALL = 0.98
"""Recall of severity 4 (imminent danger) among escalations, out of fold, by the
service's imminence signal (an imminence rule *or* the imminent head), overall and
within each writing style with enough positives. Above the escalation target: a
message only reaches severity 4 once escalated, so its end-to-end recall is the
product of both (0.975 x 0.97 left the held-out severity-4 recall at 0.947-0.951,
below the 0.95 target). Chosen on out-of-fold scores of the train split: 0.97 ->
threshold 0.128, 97.4% recalled, 9.8% of severity-3 escalations rated 4 (teen code
0.968, the binding style); 0.98 per style -> 0.071, 98.6%, ~15%. Rating a
severity-3 disclosure as imminent costs a 113/115 line in the reply and an urgent
report; missing an imminent one costs the child those."""
MIN_SUBGROUP_POSITIVES = 500
"""A writing style constrains the threshold only with this many positives: with
fewer, its 3rd-percentile score is noise (the 202 mixed-language positives alone
would lower the threshold from 0.20 to 0.09)."""
HARD_NEGATIVE_WEIGHT = 3.0
"""Weight of a hard negative (risk words, no risk) in the escalation heads' fit.
Chosen by grouped 5-fold CV on the train split (false escalation on hard negatives
at 0.97 recall, stacked head): weight 1 -> 0.129, 2 -> 0.108, 3 -> 0.106,
5 -> 0.103, 8 -> 0.109; 3 had the lowest rate on all negatives."""
OOF_FOLDS = 10
"""Folds of the out-of-fold scores that set the thresholds. Each fold's model sees
(k-1)/k of the data and the final model all of it, so with few folds the
thresholds come out low (recall above the target, more false alarms). On two outer
group splits of the train split, 5 folds gave test recall 0.973/0.975 and false
escalation on hard negatives 0.111/0.118; 10 folds 0.970/0.975 and 0.100/0.108."""
RISK_CATEGORIES = tuple(c for c in CATEGORIES if c != "none")
TRAIN_JOBS = 2
"""Processes for the out-of-fold passes of training (this machine's cores; the result
does not depend on it)."""
KIND_FOLDS = 5
"""Folds of the kind head's out-of-fold scores (each fit takes ~40 s on this machine, so
fewer than the other heads' ``OOF_FOLDS``). On the train split, stacked head at the
per-style thresholds: 5 folds, false escalation on hard negatives 0.043 at recall
0.980; 10 folds, 0.033 at 0.978 (the training took 9 minutes with them)."""
_HEADS_LOCK = threading.Lock()
"""Serialises building a model's :class:`FusedHeads`: built lazily by concurrent first
requests, every request thread made its own copy (~50 MiB of temporaries each, left in
that thread's malloc arena), which took a fresh service from 0.5 to 1.2 GiB in seconds."""


@dataclass
class Example:
    text: str
    severity: int
    categories: list[str]
    style: str = ""
    hard_negative: bool = False
    group: str = ""
    split: str = "train"
    batch: str = ""


def accent_training_texts(path: Path = CORPUS_FILE) -> list[str]:
    """The corpus's training-split messages typed with diacritics: chat-style sentences for
    the accent restorer. Held-out messages are never used, so the risk evaluation's
    accent-restored text comes from a restorer that has not seen it. No corpus, no texts."""
    if not path.exists():
        return []
    return [ex.text for ex in load_corpus(path, split="train") if has_diacritics(ex.text)]


def load_corpus(path: Path = CORPUS_FILE, split: str | None = None) -> list[Example]:
    if not path.exists():
        raise ModelNotTrained(f"risk corpus not found: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if split is not None and row.get("split") != split:
                continue
            out.append(
                Example(
                    text=row["text"],
                    severity=int(row["severity"]),
                    categories=[c for c in row.get("categories", []) if c != "none"],
                    style=row.get("style", ""),
                    hard_negative=bool(row.get("hard_negative")),
                    group=row.get("group", row.get("id", "")),
                    split=row.get("split", "train"),
                    batch=row.get("batch", ""),
                )
            )
    return out


def risk_text(message: NormalizedText) -> str:
    """The main form of a message the model reads: teen code expanded, accents restored, lower case."""
    return message.restored.lower()


RiskInput = tuple[str, str]
"""What the model reads of one message: (:func:`risk_text`, the accent-folded text)."""


def risk_inputs(message: NormalizedText) -> RiskInput:
    return risk_text(message), message.folded


def corpus_digest(path: Path = CORPUS_FILE, text_version: str = "") -> str:
    """Version of the artifact: the corpus, the training code, the rules it
    stacks on and the text layer (``text_version``) that produces its input."""
    digest = hashlib.sha256(f"format={MODEL_FORMAT};recall={TARGET_OOF_RECALL},{TARGET_OOF_IMMINENT_RECALL};text={text_version}".encode())
    digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(rules_module.__file__).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class RiskModel:
    """The fitted vectorizers and heads, plus thresholds tuned out-of-fold."""

    char_vec: TfidfVectorizer
    word_vec: TfidfVectorizer
    fold_vec: TfidfVectorizer
    escalate_clf: Any
    imminent_clf: Any
    category_clfs: dict[str, Any]
    threshold_escalate: float
    threshold_imminent: float
    version: str
    trained_on: int
    metrics: dict[str, float] = field(default_factory=dict)
    base_clf: Any = None
    stack_clf: Any = None
    threshold_stack: float = 0.5
    kind_clf: Any = None
    """The kind head: multinomial over (primary category, escalate or not), see :func:`kind_labels`."""
    oof_stack: Any = None
    """Out-of-fold stacked scores of the train split, in corpus order (float32): what
    :mod:`assistant.risk.second_opinion` fits its combiner on."""

    def heads(self) -> FusedHeads:
        """Every head in one matrix, built once per loaded model (thread-safe)."""
        fused: FusedHeads | None = self.__dict__.get("_fused")
        if fused is None:
            with _HEADS_LOCK:
                fused = self.__dict__.get("_fused")
                if fused is None:
                    fused = self.__dict__["_fused"] = FusedHeads(self)
        return fused

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fused"}

    def features(self, inputs: Sequence[RiskInput]) -> sparse.csr_matrix:
        texts = [text for text, _ in inputs]
        folded = [fold for _, fold in inputs]
        return sparse.hstack(
            [
                tfidf_transform(self.char_vec, texts),
                tfidf_transform(self.word_vec, texts),
                tfidf_transform(self.fold_vec, folded),
            ],
            format="csr",
        )

    def row(self, item: RiskInput) -> SparseRow:
        """``features([item])`` as one :class:`SparseRow` (the same columns and values)."""
        text, fold = item
        return SparseRow.hstack(
            [tfidf_row(self.char_vec, text), tfidf_row(self.word_vec, text), tfidf_row(self.fold_vec, fold)]
        )

    def predict(
        self, inputs: Sequence[RiskInput], rule_features: Sequence[Sequence[float]] | None = None
    ) -> list[dict[str, Any]]:
        """Scores for ``inputs`` (see :func:`risk_inputs`). With the rules' features
        of the same messages, ``p_stack`` (the ensemble's head) is included."""
        heads = self.heads()
        if len(inputs) == 1:  # the service's case: no sparse matrix at all
            decision = heads.decisions_row(self.row(inputs[0]))
        else:
            decision = heads.decisions(self.features(inputs))
        n = decision.shape[0]
        p_esc = heads.calibrated(decision, "escalate")
        p_imm = heads.calibrated(decision, "imminent")
        probs = expit(decision[:, list(heads.categories.values())])  # one call for every category
        cats = {c: probs[:, k] for k, c in enumerate(heads.categories)}
        p_stack: list[float | None] = [None] * n
        if rule_features is not None:
            z = stack_inputs(decision[:, heads.base], heads.kind_escalate(decision), rule_features)
            p_stack = [float(v) for v in expit(z @ self.stack_clf.coef_[0] + self.stack_clf.intercept_[0])]
        return [
            {
                "p_escalate": float(p_esc[i]),
                "p_stack": p_stack[i],
                "p_imminent": float(p_imm[i]),
                "categories": {c: float(v[i]) for c, v in cats.items()},
            }
            for i in range(n)
        ]


class FusedHeads:
    """Every linear head's weights in one matrix: one sparse product scores a
    message for all 19 heads at once (called one by one through scikit-learn they
    cost ~20 ms on a busy core; this costs well under 1 ms). Calibrated heads apply their
    sigmoid calibrators to the same decision values, exactly as
    ``CalibratedClassifierCV.predict_proba`` does (tested for equality)."""

    def __init__(self, model: RiskModel) -> None:
        weights: list[np.ndarray] = []
        intercepts: list[float] = []

        def add(clf: LogisticRegression) -> int:
            weights.append(np.asarray(clf.coef_, dtype=np.float64).ravel())
            intercepts.append(float(clf.intercept_[0]))
            return len(weights) - 1

        self._calibrated: dict[str, list[tuple[int, float, float]]] = {}
        for name, calibrated in (("escalate", model.escalate_clf), ("imminent", model.imminent_clf)):
            self._calibrated[name] = [
                (add(part.estimator), float(part.calibrators[0].a_), float(part.calibrators[0].b_))
                for part in calibrated.calibrated_classifiers_
            ]
        self.base = add(model.base_clf) if model.base_clf is not None else -1
        self.categories = {c: add(clf) for c, clf in model.category_clfs.items()}
        kind = model.kind_clf
        first = len(weights)
        weights.extend(np.asarray(kind.coef_, dtype=np.float64))
        intercepts.extend(float(b) for b in kind.intercept_)
        self.kind = slice(first, len(weights))
        """The kind head's columns: its classes' logits, in ``kind.classes_`` order."""
        self.kind_is_escalation = escalation_classes(kind)
        self.weights = np.column_stack(weights)
        self.intercepts = np.array(intercepts)

    def decisions(self, x: sparse.csr_matrix) -> np.ndarray:
        out: np.ndarray = np.asarray(x @ self.weights) + self.intercepts
        return out

    def decisions_row(self, row: SparseRow) -> np.ndarray:
        """``decisions`` of one message's :class:`SparseRow`: a ``(1, heads)`` array."""
        out: np.ndarray = (row.dot(self.weights) + self.intercepts)[None, :]
        return out

    def kind_escalate(self, decision: np.ndarray) -> np.ndarray:
        """The kind head's P(escalate): its softmax summed over the escalation classes,
        as ``kind_clf.predict_proba`` gives it."""
        logits = decision[:, self.kind]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        out: np.ndarray = exp[:, self.kind_is_escalation].sum(axis=1) / exp.sum(axis=1)
        return out

    def calibrated(self, decision: np.ndarray, name: str) -> np.ndarray:
        parts = self._calibrated[name]
        out: np.ndarray = np.mean([expit(-(a * decision[:, j] + b)) for j, a, b in parts], axis=0)
        return out


ESCALATE_KIND = ":escalate"
"""Suffix of the kind head's escalation classes (``self_harm:escalate``)."""


def kind_labels(examples: Sequence[Example]) -> np.ndarray:
    """The kind head's class of each example: its primary category (or ``none``) and
    whether it escalates (``self_harm:escalate``, ``self_harm:low``, ``none:low``)."""
    return np.array(
        [f"{e.categories[0] if e.categories else 'none'}{ESCALATE_KIND if e.severity >= 3 else ':low'}" for e in examples]
    )


def escalation_classes(kind_clf: LogisticRegression) -> np.ndarray:
    """Mask of a fitted kind head's escalation classes, in ``classes_`` order."""
    return np.char.endswith(kind_clf.classes_.astype(str), ESCALATE_KIND)


def stack_inputs(
    base_decision: np.ndarray, kind_escalate: np.ndarray, rule_features: Sequence[Sequence[float]] | np.ndarray
) -> np.ndarray:
    """The stacked head's inputs: the escalate head's decision value, the kind head's
    P(escalate) as a logit, and the rules' features."""
    p = np.clip(np.asarray(kind_escalate, dtype=float), 1e-6, 1.0 - 1e-6)
    return np.column_stack([base_decision, np.log(p) - np.log1p(-p), np.asarray(rule_features, dtype=float)])


def _vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer, TfidfVectorizer]:
    """(restored char 2-5-grams, restored word 1-3-grams, folded word bigrams)."""
    char_vec = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=120_000, dtype=np.float32
    )
    word_vec = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 3), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float32
    )
    fold_vec = TfidfVectorizer(
        analyzer="word", ngram_range=(2, 2), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float32
    )
    return char_vec, word_vec, fold_vec


def _linear(seed: int) -> LogisticRegression:
    return LogisticRegression(C=8.0, class_weight="balanced", max_iter=3000, random_state=seed)


def _calibrated(seed: int) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(_linear(seed), method="sigmoid", cv=3)


def _kind(seed: int) -> LogisticRegression:
    """Multinomial (lbfgs) over :func:`kind_labels`; unweighted, unlike the escalate head."""
    return LogisticRegression(C=8.0, max_iter=300, random_state=seed)


def _stacker(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)


def _threshold_for_recall(
    scores: np.ndarray, positives: np.ndarray, target: float, subgroups: Sequence[np.ndarray] = ()
) -> float:
    """The highest threshold whose recall on ``positives`` is >= target overall
    and within each of ``subgroups`` (boolean masks, e.g. one per writing style),
    so that no kind of message is left below the target."""
    thresholds = []
    for mask in [np.ones_like(positives, dtype=bool), *subgroups]:
        pos_scores = np.sort(scores[positives & mask])
        if len(pos_scores) < MIN_SUBGROUP_POSITIVES:
            continue
        k = int(np.floor((1.0 - target) * len(pos_scores)))
        thresholds.append(pos_scores[k] - 1e-6)
    if not thresholds:
        return 0.5
    return float(max(min(min(thresholds), 0.95), 0.02))


def imminent_threshold(
    scores: np.ndarray,
    rule_imminent: np.ndarray,
    positives: np.ndarray,
    subgroups: Sequence[np.ndarray] = (),
    target: float = TARGET_OOF_IMMINENT_RECALL,
) -> tuple[float, float]:
    """The imminent head's threshold among escalations, and the recall it gives.

    The service rates an escalation imminent when an imminence rule fired *or* the
    head's score reaches the threshold, so the recall target is held by that
    union: messages a rule already catches count as recalled whatever their score,
    and the head is tuned for the ones the rules miss."""
    union = np.where(rule_imminent, 1.0, scores)
    threshold = _threshold_for_recall(union, positives, target, subgroups)
    recall = float(((union >= threshold) & positives).sum() / max(1, positives.sum()))
    return threshold, recall


def _fit_kind_head(
    x: sparse.csr_matrix, kinds: np.ndarray, groups: np.ndarray, seed: int
) -> tuple[LogisticRegression, np.ndarray]:
    """The kind head fitted on every example, and its out-of-fold P(escalate) over
    ``KIND_FOLDS`` grouped folds: the ``KIND_FOLDS + 1`` fits run side by side."""
    from joblib import Parallel, delayed

    cv = StratifiedGroupKFold(n_splits=KIND_FOLDS, shuffle=True, random_state=seed)
    folds = list(cv.split(x, kinds, groups))

    def fit(rows: np.ndarray) -> LogisticRegression:
        return _kind(seed).fit(x[rows], kinds[rows])

    fitted = Parallel(n_jobs=TRAIN_JOBS)(
        delayed(fit)(rows) for rows in [np.arange(len(kinds)), *(train for train, _ in folds)]
    )
    final, per_fold = fitted[0], fitted[1:]
    oof = np.zeros(len(kinds))
    for clf, (_, test) in zip(per_fold, folds, strict=True):
        oof[test] = clf.predict_proba(x[test])[:, escalation_classes(clf)].sum(axis=1)
    return final, oof


def train_model(
    examples: Sequence[Example],
    normalize: Callable[[str], NormalizedText],
    seed: int = 13,
    target_recall: float = TARGET_OOF_RECALL,
) -> RiskModel:
    """Fit on ``examples`` (the train split) with the service's text normalizer."""
    started = time.perf_counter()
    normalized = [normalize(e.text) for e in examples]
    normalized_at = time.perf_counter()
    texts = [risk_text(n) for n in normalized]
    folded = [n.folded for n in normalized]
    rules = RulesRiskClassifier()
    hits = [rules.hits(n.folded) for n in normalized]
    rule_x = np.array([rules.features(n.folded, h) for n, h in zip(normalized, hits, strict=True)], dtype=float)
    rule_imminent = np.array([rules.from_hits(h).severity >= 4 for h in hits])
    sev = np.array([e.severity for e in examples])
    y_esc = (sev >= 3).astype(int)
    y_imm = (sev >= 4).astype(int)
    char_vec, word_vec, fold_vec = _vectorizers()
    x = sparse.hstack(
        [char_vec.fit_transform(texts), word_vec.fit_transform(texts), fold_vec.fit_transform(folded)], format="csr"
    )
    # Variants of one sentence share a group: folds split by group, or the
    # out-of-fold scores would be optimistic and the thresholds too high.
    groups = np.array([e.group for e in examples])
    weight = np.where([e.hard_negative for e in examples], HARD_NEGATIVE_WEIGHT, 1.0)
    cv = StratifiedGroupKFold(n_splits=OOF_FOLDS, shuffle=True, random_state=seed)
    oof_esc = cross_val_predict(
        _calibrated(seed), x, y_esc, cv=cv, groups=groups, method="predict_proba",
        params={"sample_weight": weight}, n_jobs=TRAIN_JOBS,
    )[:, 1]
    styles = np.array([e.style for e in examples])
    # The recall target holds overall and in each writing style with enough
    # positives (the populations the service is judged on). Seed batches are
    # authoring rounds, not populations: a batch's own recall is reported by
    # ``eval risk`` but does not set the threshold.
    subgroups = [styles == v for v in sorted(set(styles))]
    t_esc = _threshold_for_recall(oof_esc, y_esc == 1, target_recall, subgroups)
    # The stacker learns from out-of-fold scores of the plain linear head (as
    # it will see them on new messages), and its own threshold comes from a
    # second out-of-fold pass over those features.
    oof_base = cross_val_predict(
        _linear(seed), x, y_esc, cv=cv, groups=groups, method="decision_function", params={"sample_weight": weight},
        n_jobs=TRAIN_JOBS,
    )
    # The kind head tells a disclosure from a harmless message on the same topic
    # (self_harm:escalate against self_harm:low) where the escalate head only sees
    # risk words; its out-of-fold P(escalate) is the stacker's second input.
    kind_started = time.perf_counter()
    kind_clf, oof_kind_escalate = _fit_kind_head(x, kind_labels(examples), groups, seed)
    kind_seconds = time.perf_counter() - kind_started
    z = stack_inputs(oof_base, oof_kind_escalate, rule_x)
    oof_stack = cross_val_predict(_stacker(seed), z, y_esc, cv=cv, groups=groups, method="predict_proba")[:, 1]
    t_stack = _threshold_for_recall(oof_stack, y_esc == 1, target_recall, subgroups)
    base_clf = _linear(seed).fit(x, y_esc, sample_weight=weight)
    stack_clf = _stacker(seed).fit(z, y_esc)
    esc_idx = np.where(y_esc == 1)[0]
    oof_imm = cross_val_predict(
        _calibrated(seed), x[esc_idx], y_imm[esc_idx], cv=cv, groups=groups[esc_idx], method="predict_proba",
        n_jobs=TRAIN_JOBS,
    )[:, 1]
    t_imm, oof_imm_recall = imminent_threshold(
        oof_imm, rule_imminent[esc_idx], y_imm[esc_idx] == 1, [g[esc_idx] for g in subgroups]
    )
    escalate_clf = _calibrated(seed).fit(x, y_esc, sample_weight=weight)
    imminent_clf = _calibrated(seed).fit(x[esc_idx], y_imm[esc_idx])
    category_clfs: dict[str, Any] = {}
    for category in RISK_CATEGORIES:
        y = np.array([int(category in e.categories) for e in examples])
        if y.sum() < 3:
            continue
        category_clfs[category] = LogisticRegression(
            C=8.0, class_weight="balanced", max_iter=3000, random_state=seed
        ).fit(x, y)
    negatives = y_esc == 0
    metrics = {
        "oof_escalation_recall": float(((oof_esc >= t_esc) & (y_esc == 1)).sum() / max(1, y_esc.sum())),
        "oof_false_escalation_rate": float(((oof_esc >= t_esc) & negatives).sum() / max(1, negatives.sum())),
        "oof_stack_escalation_recall": float(((oof_stack >= t_stack) & (y_esc == 1)).sum() / max(1, y_esc.sum())),
        "oof_stack_false_escalation_rate": float(
            ((oof_stack >= t_stack) & negatives).sum() / max(1, negatives.sum())
        ),
        "oof_imminent_recall": oof_imm_recall,
        "train_seconds": round(time.perf_counter() - started, 1),
        "normalize_seconds": round(normalized_at - started, 1),
        "kind_head_seconds": round(kind_seconds, 1),
    }
    log.info("risk model trained", extra=metrics)
    return RiskModel(
        char_vec, word_vec, fold_vec, escalate_clf, imminent_clf, category_clfs, t_esc, t_imm, "", len(examples), metrics,
        base_clf=base_clf, stack_clf=stack_clf, threshold_stack=t_stack, oof_stack=oof_stack.astype(np.float32),
        kind_clf=kind_clf,
    )


def save_model(model: RiskModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent trainers never share one
    with tmp.open("wb") as fh:
        pickle.dump({"format": MODEL_FORMAT, "model": model}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def load_model(path: Path) -> RiskModel:
    try:
        with path.open("rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - our own artifact, under the data directory
    except FileNotFoundError as exc:
        raise ModelNotTrained(f"risk model not found at {path}: run `python -m assistant risk train`") from exc
    if data.get("format") != MODEL_FORMAT:
        raise ModelNotTrained(f"risk model at {path} has an old format: retrain it")
    model: RiskModel = data["model"]
    model.heads()  # at start-up, not by the first requests
    return model


def model_path(models_dir: Path, version: str) -> Path:
    return models_dir / "risk" / f"risk-model-{version}.pkl"


def current_artifact(models_dir: Path, text_version: str = "", corpus: Path = CORPUS_FILE) -> tuple[str, Path]:
    """(version, path) of the artifact for this corpus, training code, rules and text layer."""
    version = corpus_digest(corpus, text_version)
    return version, model_path(models_dir, version)


def load_or_train(
    models_dir: Path,
    normalize: Callable[[str], NormalizedText],
    corpus: Path = CORPUS_FILE,
    text_version: str = "",
) -> RiskModel:
    """The cached artifact for the current corpus and text layer, training it once if missing."""
    version, path = current_artifact(models_dir, text_version, corpus)
    if path.exists():
        return load_model(path)
    examples = load_corpus(corpus, split="train")
    model = train_model(examples, normalize)
    model.version = version
    save_model(model, path)
    model.heads()
    return model


class ModelRiskClassifier:
    """The trained layer alone, behind the ``RiskClassifier`` interface."""

    def __init__(self, model: RiskModel) -> None:
        self.model = model
        self.model_version = f"model-{model.version}"

    def score(
        self, message: NormalizedText, rule_features: Sequence[float] | None = None
    ) -> dict[str, Any]:
        return self.model.predict([risk_inputs(message)], None if rule_features is None else [rule_features])[0]

    def assess_scores(self, scores: dict[str, Any]) -> RiskAssessment:
        model = self.model
        cats: dict[str, float] = scores["categories"]
        signals: list[str] = []
        if scores["p_escalate"] >= model.threshold_escalate:
            severity = 4 if scores["p_imminent"] >= model.threshold_imminent else 3
            allowed = HIGH_CATEGORIES
            signals.append(f"mô hình: khả năng cần chuyển tiếp {scores['p_escalate']:.2f}")
        else:
            allowed = (*HIGH_CATEGORIES, *MODERATE_CATEGORIES)
            top = max(cats.values(), default=0.0)
            severity = 2 if top >= 0.8 else 1 if top >= 0.5 else 0
        candidates = {c: v for c, v in cats.items() if c in allowed}
        primary = max(candidates, key=lambda c: candidates[c]) if candidates and severity > 0 else "none"
        if severity >= 2 and primary in MODERATE_CATEGORIES and severity > 2:
            severity = 2
        if primary != "none" and severity < 3:
            signals.append(f"mô hình: {primary} {cats[primary]:.2f}")
        return RiskAssessment(
            severity=severity,
            primary=primary if severity > 0 else "none",
            categories={c: round(v, 3) for c, v in cats.items() if v >= 0.2},
            signals=signals,
            model_version=self.model_version,
        )

    def assess(
        self, message: NormalizedText, history: Sequence[NormalizedText] = ()  # noqa: ARG002 - one message alone
    ) -> RiskAssessment:
        return self.assess_scores(self.score(message))
