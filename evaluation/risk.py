"""Risk evaluation: ``python -m assistant eval risk``.

On the HELD-OUT split only (never used for training or tuning), side by side
for the plain keyword baseline, rules only, model only and the ensemble, and,
when a risk transformer is trained (``risk train-transformer``), the transformer
alone and the ensemble with it as second opinion (the service's classifier then):
escalation recall and precision (overall and per writing style), the false
escalation rate on hard negatives, severity-4 recall, per-category precision /
recall / F1 of the primary category, a confusion matrix (PNG), multi-turn
results (grooming conversations escalated, benign conversations not), and
latency per message. Writes ``evaluation/reports/risk.json`` and PNGs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.risk.base import RiskAssessment, RiskClassifier
from assistant.risk.ensemble import EnsembleRiskClassifier
from assistant.risk.keyword import KeywordRiskClassifier
from assistant.risk.model import ModelRiskClassifier
from assistant.risk.rules import RulesRiskClassifier
from assistant.risk.taxonomy import CATEGORIES
from assistant.text import NormalizedText

DATA = Path(__file__).resolve().parent / "data" / "risk"
REPORTS_DIR = Path(__file__).resolve().parent / "reports"
STYLES = ("diacritics", "no_diacritics", "teencode", "mixed")


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def classifiers(services: Any) -> dict[str, RiskClassifier]:
    ensemble = services.classifier
    if not isinstance(ensemble, EnsembleRiskClassifier):
        raise RuntimeError("eval risk needs the ensemble classifier (risk.classifier=ensemble)")
    systems: dict[str, RiskClassifier] = {
        "keyword_baseline": KeywordRiskClassifier(),
        "rules": RulesRiskClassifier(),
        "model": ModelRiskClassifier(ensemble.model.model),
        "ensemble": EnsembleRiskClassifier(ensemble.rules, ensemble.model),
    }
    if ensemble.second_opinion is not None:
        # A trained transformer is present (risk.second_opinion=auto): it alone, then
        # the ensemble with it as second opinion, beside the ensemble without it.
        transformer = ensemble.second_opinion[0]
        transformer.category_model = transformer.category_model or ensemble.model
        systems["transformer"] = transformer
        systems["ensemble+transformer"] = ensemble
    return systems


def message_metrics(rows: Sequence[dict[str, Any]], preds: Sequence[RiskAssessment]) -> dict[str, Any]:
    def esc(subset: list[int]) -> dict[str, Any]:
        tp = sum(1 for i in subset if rows[i]["severity"] >= 3 and preds[i].escalate)
        fn = sum(1 for i in subset if rows[i]["severity"] >= 3 and not preds[i].escalate)
        fp = sum(1 for i in subset if rows[i]["severity"] < 3 and preds[i].escalate)
        return {"recall": _ratio(tp, tp + fn), "precision": _ratio(tp, tp + fp), "positives": tp + fn, "n": len(subset)}

    all_idx = list(range(len(rows)))
    out: dict[str, Any] = {"escalation": {"all": esc(all_idx)}}
    for style in STYLES:
        idx = [i for i in all_idx if rows[i]["style"] == style]
        if idx:
            out["escalation"][style] = esc(idx)
    hard = [i for i in all_idx if rows[i]["hard_negative"] and rows[i]["severity"] < 3]
    out["false_escalation_hard_negatives"] = {
        "rate": _ratio(sum(preds[i].escalate for i in hard), len(hard)), "n": len(hard)
    }
    neg = [i for i in all_idx if rows[i]["severity"] < 3]
    out["false_escalation_all_negatives"] = {"rate": _ratio(sum(preds[i].escalate for i in neg), len(neg)), "n": len(neg)}
    s4 = [i for i in all_idx if rows[i]["severity"] == 4]
    out["severity4"] = {
        "recall_at_4": _ratio(sum(preds[i].severity == 4 for i in s4), len(s4)),
        "escalated": _ratio(sum(preds[i].escalate for i in s4), len(s4)),
        "n": len(s4),
    }
    per_cat: dict[str, Any] = {}
    for cat in CATEGORIES:
        if cat == "none":
            continue
        tp = sum(1 for i in all_idx if rows[i]["primary"] == cat and preds[i].primary == cat)
        fp = sum(1 for i in all_idx if rows[i]["primary"] != cat and preds[i].primary == cat)
        fn = sum(1 for i in all_idx if rows[i]["primary"] == cat and preds[i].primary != cat)
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = round(2 * p * r / (p + r), 4) if p and r else 0.0
        per_cat[cat] = {"precision": p, "recall": r, "f1": f1, "support": tp + fn}
    out["per_category"] = per_cat
    # The category a counselor and the routing see on a report: right on how many of
    # the disclosures that were escalated.
    caught = [i for i in all_idx if rows[i]["severity"] >= 3 and preds[i].escalate]
    out["primary_when_escalated"] = {
        "accuracy": _ratio(sum(preds[i].primary == rows[i]["primary"] for i in caught), len(caught)),
        "n": len(caught),
    }
    # Per seed batch (batch 1 = the first corpus; later batches were added with
    # their own held-out share), so figures stay comparable across batches.
    by_batch: dict[str, Any] = {}
    for batch in sorted({r.get("batch", "batch1") for r in rows}):
        idx = [i for i in all_idx if rows[i].get("batch", "batch1") == batch]
        hard_b = [i for i in idx if rows[i]["hard_negative"] and rows[i]["severity"] < 3]
        s4_b = [i for i in idx if rows[i]["severity"] == 4]
        by_batch[batch] = {
            **esc(idx),
            "false_escalation_hard_negatives": _ratio(sum(preds[i].escalate for i in hard_b), len(hard_b)),
            "severity4_recall": _ratio(sum(preds[i].severity == 4 for i in s4_b), len(s4_b)),
        }
    out["by_batch"] = by_batch
    exact = sum(1 for i in all_idx if rows[i]["severity"] == preds[i].severity)
    out["severity_exact"] = _ratio(exact, len(rows))
    return out


def conversation_metrics(
    convs: Sequence[dict[str, Any]],
    clf: RiskClassifier,
    normalize: Callable[[str], NormalizedText],
    with_context: bool,
) -> dict[str, Any]:
    finals: list[int] = []
    for conv in convs:
        turns = [normalize(t) for t in conv["turns"]]
        if with_context:
            finals.append(clf.assess(turns[-1], turns[:-1]).severity)
        else:  # a layer without context: the conversation keeps its highest turn
            finals.append(max(clf.assess(t).severity for t in turns))
    by_pattern: dict[str, Any] = {}
    for pattern in sorted({c["pattern"] for c in convs}):
        idx = [i for i, c in enumerate(convs) if c["pattern"] == pattern]
        pos = [i for i in idx if convs[i]["final_severity"] >= 3]
        neg = [i for i in idx if convs[i]["final_severity"] < 3]
        by_pattern[pattern] = {
            "n": len(idx),
            "escalated_when_should": _ratio(sum(finals[i] >= 3 for i in pos), len(pos)),
            "false_escalation": _ratio(sum(finals[i] >= 3 for i in neg), len(neg)),
        }
    pos = [i for i, c in enumerate(convs) if c["final_severity"] >= 3]
    neg = [i for i, c in enumerate(convs) if c["final_severity"] < 3]
    return {
        "n": len(convs),
        "escalation_recall": _ratio(sum(finals[i] >= 3 for i in pos), len(pos)),
        "false_escalation": _ratio(sum(finals[i] >= 3 for i in neg), len(neg)),
        "by_pattern": by_pattern,
    }


def evaluate(services: Any, write: bool = True) -> dict[str, Any]:
    normalize: Callable[[str], NormalizedText] = services.pipeline.stage("normalize").normalize
    rows = [r for r in load_jsonl(DATA / "messages.jsonl") if r["split"] == "heldout"]
    convs = [c for c in load_jsonl(DATA / "conversations.jsonl") if c.get("split") == "heldout"]
    norm_started = time.perf_counter()
    normalized = [normalize(r["text"]) for r in rows]
    norm_ms = (time.perf_counter() - norm_started) * 1000 / max(1, len(rows))
    report: dict[str, Any] = {
        "heldout_messages": len(rows),
        "heldout_conversations": len(convs),
        "normalize_ms_per_message": round(norm_ms, 3),
        "systems": {},
    }
    confusion_preds: list[RiskAssessment] = []
    for name, clf in classifiers(services).items():
        if isinstance(clf, EnsembleRiskClassifier):
            clf._cache.clear()
        latencies = []
        preds = []
        for n in normalized:
            started = time.perf_counter()
            preds.append(clf.assess(n))
            latencies.append((time.perf_counter() - started) * 1000)
        metrics = message_metrics(rows, preds)
        metrics["latency_ms"] = {
            "p50": round(float(np.percentile(latencies, 50)), 3),
            "p95": round(float(np.percentile(latencies, 95)), 3),
        }
        metrics["conversations"] = conversation_metrics(convs, clf, normalize, name.startswith("ensemble"))
        report["systems"][name] = metrics
        if name.startswith("ensemble"):
            confusion_preds = preds  # the service's classifier: the last ensemble
    if write:
        REPORTS_DIR.mkdir(parents=True, exist_ok=True)
        (REPORTS_DIR / "risk.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        plot_confusion(rows, confusion_preds, REPORTS_DIR / "risk_confusion.png")
    return report


def plot_confusion(rows: Sequence[dict[str, Any]], preds: Sequence[RiskAssessment], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(CATEGORIES)
    pos = {c: i for i, c in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for row, pred in zip(rows, preds, strict=True):
        matrix[pos[row["primary"]], pos[pred.primary]] += 1
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("dự đoán (ensemble)")
    ax.set_ylabel("nhãn")
    ax.set_title("Primary category, held-out messages")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(report: dict[str, Any]) -> None:
    print(f"held-out: {report['heldout_messages']} messages, {report['heldout_conversations']} conversations; "
          f"normalisation {report['normalize_ms_per_message']} ms/message")
    header = f"{'system':22s}{'rec':>7s}{'prec':>7s}" + "".join(f"{s[:7]:>8s}" for s in STYLES) + \
        f"{'FE-hard':>9s}{'FE-all':>8s}{'sev4':>7s}{'conv':>7s}{'groom':>7s}{'FE-conv':>8s}{'p50ms':>7s}{'p95ms':>7s}"
    print(header)
    for name, m in report["systems"].items():
        e = m["escalation"]
        styles = "".join(f"{(e.get(s) or {}).get('recall') or 0:>8.3f}" for s in STYLES)
        conv = m["conversations"]
        groom = conv["by_pattern"].get("grooming", {}).get("escalated_when_should") or 0
        print(f"{name:22s}{e['all']['recall']:>7.3f}{e['all']['precision']:>7.3f}{styles}"
              f"{m['false_escalation_hard_negatives']['rate']:>9.3f}{m['false_escalation_all_negatives']['rate']:>8.3f}"
              f"{m['severity4']['recall_at_4'] or 0:>7.3f}{conv['escalation_recall'] or 0:>7.3f}{groom:>7.3f}"
              f"{conv['false_escalation'] or 0:>8.3f}{m['latency_ms']['p50']:>7.2f}{m['latency_ms']['p95']:>7.2f}")
    print("\nby seed batch: escalation recall / precision / FE-hard / sev4 (messages)")
    for name, m in report["systems"].items():
        parts = [
            f"{batch} {v['recall'] or 0:.3f} / {v['precision'] or 0:.3f} / "
            f"{v['false_escalation_hard_negatives'] or 0:.3f} / {v['severity4_recall'] or 0:.3f} ({v['n']})"
            for batch, v in m.get("by_batch", {}).items()
        ]
        print(f"  {name:18s}" + "   ".join(parts))
    service = list(report["systems"])[-1]
    print("\nprimary category right on escalated disclosures: " + ", ".join(
        f"{name} {(m.get('primary_when_escalated') or {}).get('accuracy') or 0:.3f}" for name, m in report["systems"].items()
    ))
    print(f"\nper category ({service}): precision / recall / F1 (support)")
    for cat, v in report["systems"][service]["per_category"].items():
        print(f"  {cat:22s} {v['precision'] or 0:.3f} / {v['recall'] or 0:.3f} / {v['f1']:.3f} ({v['support']})")
