"""Retrieval evaluation: ``python -m assistant eval retrieval``.

Compares, on the same questions and in one run: BM25 only, dense only, a plain
LangChain ``Chroma.similarity_search`` baseline (raw question, same embedder,
no normalisation), and the hybrid used by the bot. Reports recall@1, recall@5
and MRR per writing style on the dev and held-out splits, the no-answer
threshold calibrated on dev (answer rate on in-scope questions, rejection rate
on out-of-scope ones), and retrieval latency. Writes JSON and a PNG chart
under ``evaluation/reports/``.

The split is fixed by a hash of the question id (40% held out); nothing is
tuned on the held-out split. ``python -m evaluation.retrieval`` lists the DEV
misses per writing style (query, gold, top 3 with their leg ranks) for tuning;
it never shows a held-out question.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.text import NormalizedText

DATA_DIR = Path(__file__).resolve().parent / "data" / "retrieval"
REPORTS_DIR = Path(__file__).resolve().parent / "reports"
HELDOUT_SHARE = 0.4
STYLES = ("diacritics", "no_diacritics", "teencode")


@dataclass
class Question:
    id: str
    text: str
    audience: str
    style: str
    gold: list[str]
    source: str = ""  # the question file's stem (``questions_a``...): when the question was written

    @property
    def split(self) -> str:
        h = int(hashlib.sha256(self.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return "heldout" if h < HELDOUT_SHARE else "dev"


def load_questions(pattern: str = "questions_*.jsonl", data_dir: Path = DATA_DIR) -> list[Question]:
    out = []
    for path in sorted(data_dir.glob(pattern)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append(
                    Question(row["id"], row["question"], row["audience"], row["style"], list(row["gold"]), path.stem)
                )
    return out


def rank_metrics(ranked: Sequence[Sequence[str]], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for ids, gold in zip(ranked, golds, strict=True):
        positions = [i for i, aid in enumerate(ids) if aid in gold]
        if positions:
            first = positions[0]
            r1 += first == 0
            r5 += first < 5
            mrr += 1.0 / (first + 1)
    n = max(1, len(golds))
    return {"r@1": round(r1 / n, 3), "r@5": round(r5 / n, 3), "mrr": round(mrr / n, 3), "n": len(golds)}


def evaluate(services: Any, write: bool = True) -> dict[str, Any]:
    from langchain_chroma import Chroma

    index = services.index
    normalize: Callable[[str], NormalizedText] = services.pipeline.stage("normalize").normalize
    questions = load_questions()
    # Gold ids of articles since merged into another resolve to the merged article.
    for q in questions:
        q.gold = [a.id if (a := index.resolve(g)) else g for g in q.gold]
    out_of_scope = load_questions("out_of_scope.jsonl")
    baseline = Chroma(
        collection_name=index.store._collection.name,
        embedding_function=index.store.embeddings,
        client=index._chroma_client(),
    )

    def plain_baseline(q: Question) -> list[str]:
        docs = baseline.similarity_search(q.text, k=20)
        seen: list[str] = []
        for doc in docs:
            aid = doc.metadata["article_id"]
            if aid not in seen:
                seen.append(aid)
        return seen

    systems: dict[str, Callable[[Question, NormalizedText], list[Any]]] = {
        "bm25": lambda q, n: index.search_bm25(n.folded, q.audience, k=10),
        "dense": lambda q, n: index.search_dense(n.restored, q.audience, k=10),
        "hybrid": lambda q, n: index.search(n.folded, n.restored, q.audience, k=10),
    }
    results: dict[str, dict[str, list[str]]] = {s: {} for s in [*systems, "langchain_baseline"]}
    top_hits: dict[str, Any] = {}
    latencies: list[float] = []
    for q in questions:
        started = time.perf_counter()
        norm = normalize(q.text)
        hybrid_hits = systems["hybrid"](q, norm)
        latencies.append(time.perf_counter() - started)
        top_hits[q.id] = hybrid_hits[0] if hybrid_hits else None
        results["hybrid"][q.id] = [h.article.id for h in hybrid_hits]
        results["bm25"][q.id] = [h.article.id for h in systems["bm25"](q, norm)]
        results["dense"][q.id] = [h.article.id for h in systems["dense"](q, norm)]
        results["langchain_baseline"][q.id] = plain_baseline(q)

    table: dict[str, Any] = {}
    for split in ("dev", "heldout"):
        table[split] = {}
        subset = [q for q in questions if q.split == split]
        for system, ranked in results.items():
            row = {"all": rank_metrics([ranked[q.id] for q in subset], [q.gold for q in subset])}
            for style in STYLES:
                qs = [q for q in subset if q.style == style]
                row[style] = rank_metrics([ranked[q.id] for q in qs], [q.gold for q in qs])
            table[split][system] = row

    # The hybrid's held-out figures per question file: a later file adds questions written
    # after the system was tuned, so the earlier files' figures stay comparable over time.
    table["heldout_hybrid_by_file"] = {}
    heldout = [q for q in questions if q.split == "heldout"]
    for source in sorted({q.source for q in heldout}):
        qs = [q for q in heldout if q.source == source]
        row = {"all": rank_metrics([results["hybrid"][q.id] for q in qs], [q.gold for q in qs])}
        for style in STYLES:
            sub = [q for q in qs if q.style == style]
            row[style] = rank_metrics([results["hybrid"][q.id] for q in sub], [q.gold for q in sub])
        table["heldout_hybrid_by_file"][source] = row

    responder = services.chat.pipeline.stage("respond").responder
    calibration = calibrate_threshold(
        responder, [q for q in questions if q.split == "dev"], top_hits,
        [q for q in out_of_scope if q.split == "dev"], normalize,
    )
    heldout_rel = relevance_rates(
        responder, [q for q in questions if q.split == "heldout"], top_hits,
        [q for q in out_of_scope if q.split == "heldout"], normalize, calibration["thresholds"],
    )
    lat = np.array(latencies) * 1000
    report = {
        "questions": {"total": len(questions), "dev": sum(q.split == "dev" for q in questions),
                      "heldout": sum(q.split == "heldout" for q in questions),
                      "by_style": {s: sum(q.style == s for q in questions) for s in STYLES}},
        "articles": len(index.articles),
        "embedder": index.embedder.name,
        "metrics": table,
        "no_answer_threshold": {"calibrated_on_dev": calibration, "heldout": heldout_rel},
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2), "p95": round(float(np.percentile(lat, 95)), 2),
                       "max": round(float(lat.max()), 2), "includes": "normalisation + accent restoration + hybrid search"},
    }
    if write:
        REPORTS_DIR.mkdir(parents=True, exist_ok=True)
        (REPORTS_DIR / "retrieval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        plot(report, REPORTS_DIR / "retrieval.png")
    return report


def _relevant(hit: Any, min_bm25: float, min_dense: float) -> bool:
    return hit is not None and (hit.raw.get("bm25", 0) >= min_bm25 or hit.raw.get("dense", 0) >= min_dense)


def relevance_rates(
    responder: Any, in_scope: Sequence[Question], top_hits: dict[str, Any], oos: Sequence[Question],
    normalize: Callable[[str], NormalizedText], thresholds: dict[str, float],
) -> dict[str, Any]:
    index = responder.index
    answered = sum(_relevant(top_hits[q.id], **thresholds) for q in in_scope)
    rejected = 0
    for q in oos:
        n = normalize(q.text)
        hits = index.search(n.folded, n.restored, q.audience, k=1)
        rejected += not _relevant(hits[0] if hits else None, **thresholds)
    return {
        "in_scope_answer_rate": round(answered / max(1, len(in_scope)), 3),
        "out_of_scope_rejection_rate": round(rejected / max(1, len(oos)), 3),
        "n_in_scope": len(in_scope), "n_out_of_scope": len(oos),
    }


def calibrate_threshold(
    responder: Any, in_scope: Sequence[Question], top_hits: dict[str, Any], oos: Sequence[Question],
    normalize: Callable[[str], NormalizedText],
) -> dict[str, Any]:
    """Grid search on dev: keep >= 97% of in-scope answers, then reject as many out-of-scope as possible."""
    index = responder.index
    oos_hits = []
    for q in oos:
        n = normalize(q.text)
        hits = index.search(n.folded, n.restored, q.audience, k=1)
        oos_hits.append(hits[0] if hits else None)
    best: tuple[float, float, dict[str, float]] | None = None
    for min_bm25 in np.arange(2.0, 16.01, 0.5):
        for min_dense in np.arange(0.78, 0.921, 0.005):
            th = {"min_bm25": float(round(min_bm25, 2)), "min_dense": float(round(min_dense, 3))}
            keep = sum(_relevant(top_hits[q.id], **th) for q in in_scope) / max(1, len(in_scope))
            reject = sum(not _relevant(h, **th) for h in oos_hits) / max(1, len(oos_hits))
            if keep >= 0.97 and (best is None or (reject, keep) > (best[0], best[1])):
                best = (reject, keep, th)
    if best is None:
        return {"thresholds": {"min_bm25": 0.0, "min_dense": 0.0}, "dev_answer_rate": 1.0, "dev_rejection_rate": 0.0}
    return {"thresholds": best[2], "dev_answer_rate": round(best[1], 3), "dev_rejection_rate": round(best[0], 3)}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = ["langchain_baseline", "bm25", "dense", "hybrid"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, metric in zip(axes, ("r@1", "mrr"), strict=True):
        width = 0.2
        x = np.arange(len(STYLES))
        for i, system in enumerate(systems):
            vals = [report["metrics"]["heldout"][system][s][metric] for s in STYLES]
            ax.bar(x + (i - 1.5) * width, vals, width, label=system)
        ax.set_xticks(x, ["có dấu", "không dấu", "teen code"])
        ax.set_title(f"{metric} (held-out)")
        ax.set_ylim(0, 1)
        ax.axhline(0.85, color="grey", linestyle="--", linewidth=0.8)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(report: dict[str, Any]) -> None:
    print(f"articles {report['articles']}, questions {report['questions']}, embedder {report['embedder']}")
    for split in ("dev", "heldout"):
        print(f"\n[{split}] R@1 / R@5 / MRR")
        print(f"{'system':20s}" + "".join(f"{s:>24s}" for s in ("all", *STYLES)))
        for system, row in report["metrics"][split].items():
            cells = "".join(f"{row[s]['r@1']:>8.3f}{row[s]['r@5']:>8.3f}{row[s]['mrr']:>8.3f}" for s in ("all", *STYLES))
            print(f"{system:20s}{cells}")
    print("\n[heldout, hybrid, per question file] R@1 / R@5 / MRR")
    for source, row in report["metrics"].get("heldout_hybrid_by_file", {}).items():
        cells = "".join(f"{row[s]['r@1']:>8.3f}{row[s]['r@5']:>8.3f}{row[s]['mrr']:>8.3f}" for s in ("all", *STYLES))
        print(f"{source:20s}{cells}  (n={row['all']['n']})")
    th = report["no_answer_threshold"]
    print(f"\nno-answer threshold (dev): {th['calibrated_on_dev']}")
    print(f"no-answer threshold (held-out): {th['heldout']}")
    print(f"retrieval latency ms: {report['latency_ms']}")


def dev_errors(services: Any, k: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The hybrid's misses at rank 1 on the DEV split only, per writing style."""
    index = services.index
    normalize: Callable[[str], NormalizedText] = services.pipeline.stage("normalize").normalize
    out: dict[str, list[dict[str, Any]]] = {style: [] for style in STYLES}
    for q in load_questions():
        if q.split != "dev":
            continue
        gold = [a.id if (a := index.resolve(g)) else g for g in q.gold]
        norm = normalize(q.text)
        hits = index.search(norm.folded, norm.restored, q.audience, k=10)
        ids = [h.article.id for h in hits]
        if ids and ids[0] in gold:
            continue
        out[q.style].append({
            "id": q.id, "audience": q.audience, "question": q.text, "restored": norm.restored, "gold": gold,
            "gold_rank": next((i + 1 for i, aid in enumerate(ids) if aid in gold), None),
            "top": [(h.article.id, round(h.score, 4), h.ranks) for h in hits[:k]],
        })
    return out


def main() -> None:  # pragma: no cover - a developer's tool
    from assistant.__main__ import _services

    services = _services()
    try:
        for style, rows in dev_errors(services).items():
            print(f"\n== {style}: {len(rows)} dev misses")
            for row in rows:
                print(f"- [{row['id']} {row['audience']}] {row['question']}")
                print(f"    restored: {row['restored']}")
                print(f"    gold {row['gold']} at rank {row['gold_rank']}")
                for aid, score, ranks in row["top"]:
                    print(f"    {aid:45s} {score:.4f} {ranks}")
    finally:
        services.close()


if __name__ == "__main__":  # pragma: no cover
    main()
