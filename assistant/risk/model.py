"""Trained layer: character and word n-gram TF-IDF + calibrated linear models.

Features are taken from the accent-folded, teen-code-expanded text, so a
message typed with or without diacritics looks the same to the model. Three
heads share the features:

- ``escalate``: P(severity >= 3), a calibrated logistic regression;
- ``imminent``: P(severity == 4), a calibrated logistic regression;
- ``category``: one-vs-rest logistic regressions over the taxonomy codes.

Training (``python -m assistant risk train``) is deterministic and reads only
the ``train`` split of the shipped corpus; thresholds are tuned on
out-of-fold predictions of that split (never on the held-out split). The
artifact is versioned by a hash of the corpus and this module's
``MODEL_FORMAT`` and cached under ``<data_dir>/models/risk/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

from assistant.risk.base import ModelNotTrained, RiskAssessment
from assistant.risk.taxonomy import CATEGORIES, HIGH_CATEGORIES, MODERATE_CATEGORIES
from assistant.text import NormalizedText

log = logging.getLogger(__name__)

MODEL_FORMAT = 1
CORPUS_FILE = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "risk" / "messages.jsonl"
TARGET_OOF_RECALL = 0.97
RISK_CATEGORIES = tuple(c for c in CATEGORIES if c != "none")


@dataclass
class Example:
    text: str
    severity: int
    categories: list[str]
    style: str = ""
    hard_negative: bool = False
    group: str = ""
    split: str = "train"


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
                )
            )
    return out


def corpus_digest(path: Path = CORPUS_FILE) -> str:
    """Version of the artifact: the corpus, the training code and its settings."""
    digest = hashlib.sha256(f"format={MODEL_FORMAT};recall={TARGET_OOF_RECALL}".encode())
    digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class RiskModel:
    """The fitted vectorizers and heads, plus thresholds tuned out-of-fold."""

    char_vec: TfidfVectorizer
    word_vec: TfidfVectorizer
    escalate_clf: Any
    imminent_clf: Any
    category_clfs: dict[str, Any]
    threshold_escalate: float
    threshold_imminent: float
    version: str
    trained_on: int
    metrics: dict[str, float] = field(default_factory=dict)

    def features(self, folded: Sequence[str]) -> sparse.csr_matrix:
        return sparse.hstack(
            [self.char_vec.transform(folded), self.word_vec.transform(folded)], format="csr"
        )

    def predict(self, folded: Sequence[str]) -> list[dict[str, Any]]:
        x = self.features(folded)
        p_esc = self.escalate_clf.predict_proba(x)[:, 1]
        p_imm = self.imminent_clf.predict_proba(x)[:, 1]
        cats = {c: clf.predict_proba(x)[:, 1] for c, clf in self.category_clfs.items()}
        return [
            {
                "p_escalate": float(p_esc[i]),
                "p_imminent": float(p_imm[i]),
                "categories": {c: float(v[i]) for c, v in cats.items()},
            }
            for i in range(x.shape[0])
        ]


def _vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
    char_vec = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=120_000, dtype=np.float32
    )
    word_vec = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 3), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float32
    )
    return char_vec, word_vec


def _calibrated(seed: int) -> CalibratedClassifierCV:
    base = LogisticRegression(C=8.0, class_weight="balanced", max_iter=3000, random_state=seed)
    return CalibratedClassifierCV(base, method="sigmoid", cv=3)


def _threshold_for_recall(scores: np.ndarray, positives: np.ndarray, target: float) -> float:
    """The highest threshold whose recall on ``positives`` is >= target."""
    pos_scores = np.sort(scores[positives])
    if len(pos_scores) == 0:
        return 0.5
    k = int(np.floor((1.0 - target) * len(pos_scores)))
    return float(max(min(pos_scores[k] - 1e-6, 0.95), 0.02))


def train_model(
    examples: Sequence[Example],
    fold: Callable[[str], str],
    seed: int = 13,
    target_recall: float = TARGET_OOF_RECALL,
) -> RiskModel:
    """Fit on ``examples`` (the train split). ``fold`` is the text normalizer."""
    started = time.perf_counter()
    texts = [fold(e.text) for e in examples]
    sev = np.array([e.severity for e in examples])
    y_esc = (sev >= 3).astype(int)
    y_imm = (sev >= 4).astype(int)
    char_vec, word_vec = _vectorizers()
    x = sparse.hstack([char_vec.fit_transform(texts), word_vec.fit_transform(texts)], format="csr")
    # Variants of one sentence share a group: folds split by group, or the
    # out-of-fold scores would be optimistic and the thresholds too high.
    groups = np.array([e.group for e in examples])
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    oof_esc = cross_val_predict(
        _calibrated(seed), x, y_esc, cv=cv, groups=groups, method="predict_proba"
    )[:, 1]
    t_esc = _threshold_for_recall(oof_esc, y_esc == 1, target_recall)
    esc_idx = np.where(y_esc == 1)[0]
    oof_imm = cross_val_predict(
        _calibrated(seed), x[esc_idx], y_imm[esc_idx], cv=cv, groups=groups[esc_idx], method="predict_proba"
    )[:, 1]
    t_imm = _threshold_for_recall(oof_imm, y_imm[esc_idx] == 1, 0.95)
    escalate_clf = _calibrated(seed).fit(x, y_esc)
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
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    log.info("risk model trained", extra=metrics)
    return RiskModel(
        char_vec, word_vec, escalate_clf, imminent_clf, category_clfs, t_esc, t_imm, "", len(examples), metrics
    )


def save_model(model: RiskModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
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
    return model


def model_path(models_dir: Path, version: str) -> Path:
    return models_dir / "risk" / f"risk-model-{version}.pkl"


def load_or_train(
    models_dir: Path, fold: Callable[[str], str], corpus: Path = CORPUS_FILE
) -> RiskModel:
    """The cached artifact for the current corpus, training it once if missing."""
    version = corpus_digest(corpus)
    path = model_path(models_dir, version)
    if path.exists():
        return load_model(path)
    examples = load_corpus(corpus, split="train")
    model = train_model(examples, fold)
    model.version = version
    save_model(model, path)
    return model


class ModelRiskClassifier:
    """The trained layer alone, behind the ``RiskClassifier`` interface."""

    def __init__(self, model: RiskModel) -> None:
        self.model = model
        self.model_version = f"model-{model.version}"

    def score(self, message: NormalizedText) -> dict[str, Any]:
        return self.model.predict([message.folded])[0]

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
