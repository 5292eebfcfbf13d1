"""Held-out evaluation of accent restoration: our restorer vs pyvi.

Two test sets, both de-accented with ``fold_accents`` (case kept) and restored
by each system:

* ``vlsp_heldout``: the VLSP 2013 sentences shipped with underthesea whose hash
  puts them in the held-out split (``assistant.text.accents.is_heldout``);
  the restorer evaluated here is trained without them.
* ``chat``: ``CHAT_SENTENCES`` below, chat-style messages written for this
  evaluation, disjoint from the packaged training corpus (checked at run time).

Metric: share of Vietnamese syllables restored exactly (case-insensitive,
tone-mark placement normalised, since pyvi writes the new style ``hòa``),
overall and on ambiguous syllables (whose folded form has two or more accented
forms in underthesea's Viet74K word list), plus whole-sentence accuracy and
latency. Run ``python -m evaluation.accent_restoration``; the report is written
to ``evaluation/reports/accent_restoration.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.risk.model import accent_training_texts
from assistant.text.accents import (
    HELDOUT_PERCENT,
    AccentRestorer,
    chat_corpus,
    default_lexicon,
    default_training_texts,
    split_vlsp,
)
from assistant.text.normalize import fold_accents, is_vietnamese_syllable, normalize_tone_marks
from assistant.text.tokens import SYLLABLE_RE

#: Words pyvi raised on (kept unrestored); reported.
PYVI_FAILURES: list[str] = []

REPORT_PATH = Path(__file__).resolve().parent / "reports" / "accent_restoration.json"
KB_CONTENT_DIR = Path(__file__).resolve().parents[1] / "knowledge_base" / "content"

#: Chat-style test messages (never used for training).
CHAT_SENTENCES: tuple[str, ...] = (
    "Tôi muốn đổi mật khẩu",
    "Em bị người ta doạ",
    "Có ai ở đó không ạ?",
    "Em mới mười bốn tuổi thôi.",
    "Hôm qua có một người lạ nhắn tin cho em.",
    "Anh ta nói là sẽ cho em tiền nếu em gửi ảnh.",
    "Em không muốn gửi nhưng anh ta cứ đòi mãi.",
    "Nó doạ đăng ảnh em lên nhóm của lớp.",
    "Em phải làm sao để người đó không làm phiền em nữa?",
    "Bạn cùng lớp lấy trộm điện thoại của em.",
    "Mấy bạn trong nhóm chat cứ chê em béo.",
    "Em bị chặn khỏi nhóm của lớp.",
    "Mẹ em không cho em dùng điện thoại.",
    "Em lén dùng máy của anh trai.",
    "Tài khoản của em bị ai đó đăng nhập.",
    "Có người đăng bài nói xấu em trên trang của trường.",
    "Em muốn xoá hết ảnh của mình trên mạng.",
    "Người đó gửi tin nhắn rất thô tục.",
    "Em sợ ra khỏi nhà.",
    "Tối nay anh ta hẹn gặp em ở công viên.",
    "Em có nên đi gặp không?",
    "Em đã chặn nhưng anh ta lập tài khoản khác.",
    "Anh ta biết em học lớp nào.",
    "Bố em hay đánh em khi say rượu.",
    "Em không dám về nhà.",
    "Em đang trốn ở nhà bạn.",
    "Cô giáo có giúp được em không?",
    "Làm sao để báo cho công an?",
    "Số điện thoại của tổng đài là gì?",
    "Gọi tổng đài có mất tiền không?",
    "Con gái tôi bị một người đàn ông dụ dỗ trên mạng.",
    "Tôi nên nói chuyện với con như thế nào?",
    "Tôi có thể xem tin nhắn của con không?",
    "Làm sao để cài đặt giới hạn thời gian cho điện thoại?",
    "Con trai tôi chơi game cả đêm.",
    "Cháu nhà tôi bị bạn bè bắt nạt ở trường.",
    "Tôi muốn gặp người tư vấn.",
    "Cảm ơn chị đã lắng nghe em.",
    "Em thấy nhẹ lòng hơn rồi.",
    "Em sẽ gọi cho tổng đài ngay.",
    "Bạn ấy bị lừa mất hai triệu đồng.",
    "Họ bảo em quét mã để nhận thưởng.",
    "Em đã nhập số thẻ của mẹ vào trang đó.",
    "Trang web đó có an toàn không?",
    "Em nhận được lời mời làm việc online lương cao.",
    "Người ta bảo em đóng phí trước.",
    "Em có một người bạn đang gặp chuyện buồn.",
    "Bạn ấy nói là muốn chết.",
    "Em nên làm gì để giúp bạn ấy?",
    "Đừng để bạn ấy ở một mình.",
    "Chuyện này em chưa kể với ai hết.",
    "Em tin chị nên mới kể.",
    "Em có thể nhắn tin thay vì gọi điện không?",
    "Ở Đồng Nai có chỗ nào hỗ trợ trẻ em không?",
    "Nhà em ở phường Trấn Biên, gần trường học.",
    "Ngày mai em phải đi thi rồi.",
    "Em học không vào vì lo lắng quá.",
    "Bạn trai cũ đe doạ tung ảnh riêng tư của em.",
    "Ảnh đó em gửi khi hai đứa còn quen nhau.",
    "Bây giờ em phải làm gì đây?",
)


@dataclass
class SystemScore:
    """Accuracy of one system on one test set."""

    syllables: int
    correct: int
    ambiguous: int
    ambiguous_correct: int
    sentences: int
    sentences_correct: int
    ms_per_sentence_median: float
    ms_per_sentence_p95: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.syllables if self.syllables else 0.0

    @property
    def ambiguous_accuracy(self) -> float:
        return self.ambiguous_correct / self.ambiguous if self.ambiguous else 0.0

    @property
    def sentence_accuracy(self) -> float:
        return self.sentences_correct / self.sentences if self.sentences else 0.0

    def as_dict(self) -> dict[str, float | int]:
        data: dict[str, float | int] = dict(asdict(self))
        data.update(
            accuracy=round(self.accuracy, 4),
            ambiguous_accuracy=round(self.ambiguous_accuracy, 4),
            sentence_accuracy=round(self.sentence_accuracy, 4),
        )
        return data


def ambiguous_forms() -> set[str]:
    """Folded syllables with two or more accented forms in Viet74K."""
    forms: dict[str, set[str]] = defaultdict(set)
    for entry in default_lexicon()[-1]:
        for syllable in SYLLABLE_RE.findall(normalize_tone_marks(entry).lower()):
            forms[fold_accents(syllable)].add(syllable)
    return {folded for folded, accented in forms.items() if len(accented) > 1}


def _syllables(text: str) -> list[str]:
    return [normalize_tone_marks(s.lower()) for s in SYLLABLE_RE.findall(text)]


def score(restore: Callable[[str], str], sentences: Sequence[str], ambiguous: set[str]) -> SystemScore:
    """Restore each de-accented sentence and compare syllable by syllable."""
    total = correct = amb = amb_correct = sent_ok = 0
    times: list[float] = []
    for gold in sentences:
        source = fold_accents(gold)
        start = time.perf_counter()
        output = restore(source)
        times.append((time.perf_counter() - start) * 1000)
        gold_syl = _syllables(gold)
        out_syl = _syllables(output)
        if len(out_syl) != len(gold_syl):  # misaligned output: every syllable counts as wrong
            out_syl = [""] * len(gold_syl)
        all_ok = True
        for g, o in zip(gold_syl, out_syl, strict=True):
            if not is_vietnamese_syllable(g):
                continue
            ok = g == o
            total += 1
            correct += ok
            if fold_accents(g) in ambiguous:
                amb += 1
                amb_correct += ok
            all_ok &= ok
        sent_ok += all_ok
    times.sort()
    return SystemScore(
        syllables=total,
        correct=correct,
        ambiguous=amb,
        ambiguous_correct=amb_correct,
        sentences=len(sentences),
        sentences_correct=sent_ok,
        ms_per_sentence_median=round(statistics.median(times), 3) if times else 0.0,
        ms_per_sentence_p95=round(times[int(0.95 * (len(times) - 1))], 3) if times else 0.0,
    )


def _pyvi_restore() -> Callable[[str], str] | None:
    try:
        from pyvi import ViUtils
    except ImportError:
        return None

    def one(text: str) -> str:
        try:
            return str(ViUtils.add_accents(text))
        except (KeyError, IndexError, ValueError):  # pyvi emits invalid tags on some input
            PYVI_FAILURES.append(text)
            return text

    def restore(text: str) -> str:
        try:
            return str(ViUtils.add_accents(text))
        except (KeyError, IndexError, ValueError):
            # Be generous: retry word by word, keeping only the words that fail.
            return " ".join(one(word) for word in text.split(" "))

    return restore


def latency_ms(restorer: AccentRestorer, messages: Sequence[str], repeat: int = 20) -> float:
    """Median milliseconds per call of ``restorer.restore`` over ``messages``."""
    folded = [fold_accents(m) for m in messages]
    runs: list[float] = []
    for _ in range(repeat):
        for message in folded:
            start = time.perf_counter()
            restorer.restore(message)
            runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def evaluate() -> dict[str, object]:
    """Train on the training split, evaluate both systems, return the report.

    ``ours`` is trained as the service trains it (``assistant.services.load_restorer``:
    base corpora, the knowledge base and the risk corpus's training messages);
    ``ours_base`` without the risk corpus's messages, to show what they add."""
    base_texts = list(default_training_texts([KB_CONTENT_DIR]))
    chat_texts = accent_training_texts()
    leaked = set(CHAT_SENTENCES) & {*chat_corpus(), *base_texts, *chat_texts}
    if leaked:
        raise RuntimeError(f"chat test sentences found in the training corpus: {sorted(leaked)}")
    _train, heldout = split_vlsp()
    start = time.perf_counter()
    restorer = AccentRestorer.train([*base_texts, *chat_texts])
    train_seconds = time.perf_counter() - start
    ambiguous = ambiguous_forms()
    systems: dict[str, Callable[[str], str]] = {
        "ours": restorer.restore,
        "ours_base": AccentRestorer.train(base_texts).restore,
    }
    pyvi = _pyvi_restore()
    if pyvi is not None:
        systems["pyvi"] = pyvi
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    for set_name, sentences in (("vlsp_heldout", heldout), ("chat", CHAT_SENTENCES)):
        results[set_name] = {name: score(fn, sentences, ambiguous).as_dict() for name, fn in systems.items()}
    typical = [s for s in CHAT_SENTENCES if 12 <= len(SYLLABLE_RE.findall(s)) <= 18]
    return {
        "heldout_percent": HELDOUT_PERCENT,
        "heldout_sentences": len(heldout),
        "train_seconds": round(train_seconds, 2),
        "vocabulary": restorer.vocabulary_size,
        "restore_latency_ms_median": round(latency_ms(restorer, typical or CHAT_SENTENCES), 3),
        "pyvi_failed_words": sorted(set(PYVI_FAILURES)),
        "results": results,
    }


def _table(report: dict[str, object]) -> str:
    lines = [
        f"{'test set':<14}{'system':<11}{'syllables':>10}{'accuracy':>10}"
        f"{'ambiguous':>11}{'sentences':>11}{'ms/sent':>9}"
    ]
    results = report["results"]
    assert isinstance(results, dict)
    for set_name, systems in results.items():
        for name, s in systems.items():
            lines.append(
                f"{set_name:<14}{name:<11}{s['syllables']:>10}{s['accuracy']:>10.2%}"
                f"{s['ambiguous_accuracy']:>11.2%}{s['sentence_accuracy']:>11.2%}"
                f"{s['ms_per_sentence_median']:>9.2f}"
            )
    lines.append(
        f"held-out {report['heldout_sentences']} sentences ({report['heldout_percent']}%), "
        f"training {report['train_seconds']} s, vocabulary {report['vocabulary']}, "
        f"restore latency (12-18 syllable chat message) {report['restore_latency_ms_median']} ms"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print a table, write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=REPORT_PATH)
    args = parser.parse_args(argv)
    report = evaluate()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(_table(report) + f"\nreport written to {args.output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
