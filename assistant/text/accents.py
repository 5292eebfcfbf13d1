"""Diacritic restoration for Vietnamese typed without accents.

Model: every folded syllable (``doa``) has a candidate list of accented
syllables seen in training text (``doạ``, ``đoá``, ``dọa``...). A trigram
language model over lower-case syllables, interpolated modified Kneser-Ney,
scores candidate sequences; a beam search (Viterbi over trigram states,
pruned to ``beam_width``) picks the best one. Syllables already carrying
diacritics stay as typed and act as context; punctuation, digits and
non-Vietnamese words, URLs, e-mails and @handles split the text into
independently decoded segments and are kept verbatim, as is the case of every letter.

Training data ships offline: the VLSP 2013 sentences in underthesea's
POS-tagger folder (train split only, see :func:`is_heldout`), underthesea's
word lists ``Viet11K/22K/39K/74K`` (each list is one extra left context for
the syllable n-grams of its entries, so compounds such as ``mật khẩu`` are
known even if no sentence uses them, and words in the smaller, commoner lists
weigh more), a small packaged chat-style corpus (``data/chat_corpus.txt``) and
caller-provided in-domain text (knowledge-base Markdown; the training split of
the risk corpus's messages typed with diacritics, which lifts syllable accuracy
on chat-style text, see ``evaluation/reports/accent_restoration.json``). Training is
deterministic and takes a few seconds.

Errors: ``AccentModelError`` (no training data, bad or incompatible artifact).
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import importlib.util
import json
import logging
import math
import os
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from assistant.text.normalize import (
    PROTECTED_RE,
    VIETNAMESE_SYLLABLE_RE,
    fold_accents,
    has_diacritics,
    normalize_tone_marks,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "AccentModelError",
    "AccentRestorer",
    "chat_corpus",
    "RestorerConfig",
    "default_lexicon",
    "default_training_texts",
    "is_heldout",
    "load_or_train",
    "markdown_sentences",
    "split_vlsp",
    "underthesea_data_dir",
    "vlsp_sentences",
]

log = logging.getLogger(__name__)

ARTIFACT_FORMAT: Final = "assistant.text.accent-restorer"
#: Bump when training or decoding changes: cached artifacts are then rebuilt.
ARTIFACT_VERSION: Final = 1
#: Percentage of VLSP sentences held out for evaluation (never trained on).
HELDOUT_PERCENT: Final = 18

_BOS: Final = 0
_EOS: Final = 1
_LEX_IDS: Final = (2, 3, 4, 5)  # one left context per word list (frequency tiers)
_SPECIALS: Final = ("<s>", "</s>", "<lex0>", "<lex1>", "<lex2>", "<lex3>")
_LEXICON_FILES: Final = ("Viet11K.txt", "Viet22K.txt", "Viet39K.txt", "Viet74K.txt")
_SHIFT: Final = 1 << 20  # vocabulary ids fit in 20 bits
_MAX_VOCAB: Final = _SHIFT - 1

_TOKEN_RE: Final = re.compile(r"[^\W\d_]+|\s+|.", re.DOTALL)
_SEGMENT_GAP_RE: Final = re.compile(r"[ \t\u00a0]+")


class AccentModelError(RuntimeError):
    """Training data is missing or a saved model cannot be used."""


@dataclass(frozen=True, slots=True)
class RestorerConfig:
    """Hyper-parameters; part of the artifact cache key."""

    max_candidates: int = 12
    beam_width: int = 10
    unigram_floor: float = 1e-4


# ------------------------------------------------------------------ training data


def underthesea_data_dir() -> Path | None:
    """Installed underthesea package directory, found without importing it."""
    spec = importlib.util.find_spec("underthesea")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def vlsp_sentences() -> list[str]:
    """Sentences of the VLSP 2013 POS-tagger output shipped with underthesea."""
    base = underthesea_data_dir()
    if base is None:
        return []
    sentences: list[str] = []
    for path in sorted(base.glob("pipeline/pos_tag/models/*/test_output.txt")):
        tokens: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                if tokens:
                    sentences.append(" ".join(tokens))
                    tokens = []
                continue
            tokens.append(line.split("\t", 1)[0].strip())
        if tokens:
            sentences.append(" ".join(tokens))
    return [normalize_tone_marks(unicodedata.normalize("NFC", s)) for s in sentences]


def is_heldout(sentence: str) -> bool:
    """Deterministic held-out membership (by SHA-1 of the NFC sentence)."""
    digest = hashlib.sha1(unicodedata.normalize("NFC", sentence).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT


def split_vlsp() -> tuple[list[str], list[str]]:
    """VLSP sentences split into (train, held-out)."""
    train: list[str] = []
    heldout: list[str] = []
    for sentence in vlsp_sentences():
        (heldout if is_heldout(sentence) else train).append(sentence)
    return train, heldout


def default_lexicon() -> list[list[str]]:
    """underthesea's word lists Viet11K, 22K, 39K, 74K (missing ones are empty).

    The smaller lists hold the commoner words, so a word's number of lists is
    a frequency tier: each list is one more left context in the model.
    """
    base = underthesea_data_dir()
    lists: list[list[str]] = []
    for name in _LEXICON_FILES:
        path = base / "corpus" / "data" / name if base else None
        if path is None or not path.exists():
            lists.append([])
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        lists.append([line.strip() for line in lines if line.strip()])
    return lists


_FRONT_MATTER_RE: Final = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)
_CODE_FENCE_RE: Final = re.compile(r"```.*?```", re.DOTALL)
_IMAGE_RE: Final = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK_RE: Final = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL_RE: Final = re.compile(r"(?:https?://|www\.)\S+")
_HTML_RE: Final = re.compile(r"<[^>]+>")
_MD_PREFIX_RE: Final = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)")
_SENTENCE_SPLIT_RE: Final = re.compile(r"(?<=[.!?…])\s+")


def markdown_sentences(text: str) -> Iterator[str]:
    """Plain-text sentences of a Markdown document (front matter, code, links removed)."""
    text = _FRONT_MATTER_RE.sub("", unicodedata.normalize("NFC", text))
    text = _CODE_FENCE_RE.sub("\n", text)
    text = _IMAGE_RE.sub(" ", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _URL_RE.sub(" ", text)
    text = _HTML_RE.sub(" ", text)
    for line in text.splitlines():
        line = _MD_PREFIX_RE.sub("", line).replace("**", "").replace("__", "").replace("`", "")
        line = line.strip().strip("|").strip()
        for sentence in _SENTENCE_SPLIT_RE.split(line):
            if sentence.strip():
                yield sentence.strip()


def chat_corpus() -> list[str]:
    """The packaged in-domain seed sentences (``data/chat_corpus.txt``)."""
    resource = resources.files("assistant.text").joinpath("data/chat_corpus.txt")
    lines = resource.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def default_training_texts(extra_dirs: Iterable[Path] = ()) -> Iterator[str]:
    """Training sentences: VLSP train split, packaged chat corpus, ``*.md`` in ``extra_dirs``.

    Missing directories are skipped. Files are read in sorted order, so the
    sequence (and the trained model) is deterministic.
    """
    train, _heldout = split_vlsp()
    yield from train
    yield from chat_corpus()
    for directory in extra_dirs:
        directory = Path(directory)
        if not directory.is_dir():
            log.info("accent training: %s does not exist, skipped", directory)
            continue
        for path in sorted(directory.rglob("*.md")):
            yield from markdown_sentences(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ segmentation


def _segments(text: str) -> Iterator[list[tuple[int, int]]]:
    """Spans of Vietnamese syllables; runs separated only by spaces form one segment."""
    current: list[tuple[int, int]] = []
    protected = [m.span() for m in PROTECTED_RE.finditer(text)]
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0)
        if protected and any(a <= match.start() < b for a, b in protected):
            if current:
                yield current
                current = []
            continue
        if token[0].isalpha() and VIETNAMESE_SYLLABLE_RE.match(fold_accents(token).lower()):
            current.append((match.start(), match.end()))
        elif _SEGMENT_GAP_RE.fullmatch(token):
            continue
        elif current:
            yield current
            current = []
    if current:
        yield current


def _syllable_sequences(text: str) -> Iterator[list[str]]:
    text = normalize_tone_marks(unicodedata.normalize("NFC", text)).lower()
    for spans in _segments(text):
        yield [text[a:b] for a, b in spans]


# ------------------------------------------------------------------ the model


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ (Chen & Goodman)."""
    n = Counter(min(c, 4) for c in counts)
    n1, n2, n3, n4 = (n.get(k, 0) for k in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):
        return 0.5, 0.75, 0.9
    y = n1 / (n1 + 2 * n2)
    d1 = 1 - 2 * y * n2 / n1
    d2 = 2 - 3 * y * n3 / n2
    d3 = 3 - 4 * y * n4 / n3
    return max(d1, 0.1), max(d2, 0.1), max(d3, 0.1)


@dataclass(slots=True)
class _Tables:
    vocab: list[str]
    unigram: list[float]
    bow1: list[float]
    bigram: dict[int, float]
    bow2: dict[int, float]
    trigram: dict[int, float]
    candidates: dict[str, tuple[int, ...]]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.vocab)}


def _build(texts: Iterable[str], lexicon: Sequence[Sequence[str]], config: RestorerConfig) -> _Tables:
    if len(lexicon) > len(_LEX_IDS):
        raise AccentModelError(f"at most {len(_LEX_IDS)} word lists are supported")
    sentences = [seq for text in texts for seq in _syllable_sequences(text)]
    lexical = [
        (_LEX_IDS[k], seq)
        for k, entries in enumerate(lexicon)
        for entry in entries
        for seq in _syllable_sequences(entry)
    ]
    words = sorted({w for seq in sentences for w in seq} | {w for _, seq in lexical for w in seq})
    vocab = [*_SPECIALS, *words]
    if len(vocab) > _MAX_VOCAB:
        raise AccentModelError(f"vocabulary of {len(vocab)} syllables is too large")
    if not words:
        raise AccentModelError("no Vietnamese training text: is underthesea installed?")
    index = {w: i for i, w in enumerate(vocab)}

    tri_counts: Counter[tuple[int, int, int]] = Counter()
    for seq in sentences:
        ids = [_BOS, _BOS, *(index[w] for w in seq), _EOS]
        for i in range(2, len(ids)):
            tri_counts[(ids[i - 2], ids[i - 1], ids[i])] += 1
    for lex, seq in lexical:
        ids = [lex, lex, *(index[w] for w in seq)]
        for i in range(2, len(ids)):
            tri_counts[(ids[i - 2], ids[i - 1], ids[i])] += 1

    # Trigram level: raw counts.
    d3 = _discounts(tri_counts.values())
    ctx2_total: dict[tuple[int, int], int] = defaultdict(int)
    ctx2_mass: dict[tuple[int, int], float] = defaultdict(float)
    bigram_cont: Counter[tuple[int, int]] = Counter()
    for (a, b, c), n in tri_counts.items():
        ctx2_total[(a, b)] += n
        ctx2_mass[(a, b)] += d3[min(n, 3) - 1]
        bigram_cont[(b, c)] += 1

    # Bigram level: continuation counts.
    d2 = _discounts(bigram_cont.values())
    ctx1_total: dict[int, int] = defaultdict(int)
    ctx1_mass: dict[int, float] = defaultdict(float)
    unigram_cont: Counter[int] = Counter()
    for (b, c), n in bigram_cont.items():
        ctx1_total[b] += n
        ctx1_mass[b] += d2[min(n, 3) - 1]
        unigram_cont[c] += 1

    total = sum(unigram_cont.values())
    floor = config.unigram_floor / len(vocab)
    p1 = [(1 - config.unigram_floor) * unigram_cont.get(i, 0) / total + floor for i in range(len(vocab))]

    gamma1 = {b: ctx1_mass[b] / ctx1_total[b] for b in ctx1_total}
    p2: dict[tuple[int, int], float] = {}
    for (b, c), n in bigram_cont.items():
        p2[(b, c)] = (n - d2[min(n, 3) - 1]) / ctx1_total[b] + gamma1[b] * p1[c]

    gamma2 = {ctx: ctx2_mass[ctx] / ctx2_total[ctx] for ctx in ctx2_total}
    trigram: dict[int, float] = {}
    for (a, b, c), n in tri_counts.items():
        if a in _LEX_IDS or b in _LEX_IDS:
            continue  # lexicon contexts are never queried
        lower = p2.get((b, c))
        if lower is None:
            lower = gamma1.get(b, 1.0) * p1[c]
        p = (n - d3[min(n, 3) - 1]) / ctx2_total[(a, b)] + gamma2[(a, b)] * lower
        trigram[(a * _SHIFT + b) * _SHIFT + c] = _round(math.log(p))

    bigram = {b * _SHIFT + c: _round(math.log(p)) for (b, c), p in p2.items() if b not in _LEX_IDS}
    bow2 = {
        a * _SHIFT + b: _round(math.log(g))
        for (a, b), g in gamma2.items()
        if a not in _LEX_IDS and b not in _LEX_IDS
    }
    bow1 = [_round(math.log(gamma1[i])) if gamma1.get(i) else 0.0 for i in range(len(vocab))]
    unigram = [_round(math.log(p)) for p in p1]

    by_folded: dict[str, list[int]] = defaultdict(list)
    for i, w in enumerate(vocab):
        if i >= len(_SPECIALS):
            by_folded[fold_accents(w)].append(i)
    candidates = {
        folded: tuple(sorted(ids, key=lambda i: (-unigram[i], vocab[i]))[: config.max_candidates])
        for folded, ids in sorted(by_folded.items())
    }
    return _Tables(vocab, unigram, bow1, bigram, bow2, trigram, candidates)


def _round(value: float) -> float:
    return round(value, 4)


def _fingerprint(texts: Sequence[str], lexicon: Sequence[Sequence[str]], config: RestorerConfig) -> str:
    digest = hashlib.sha256()
    digest.update(f"{ARTIFACT_FORMAT}:{ARTIFACT_VERSION}\n".encode())
    digest.update(json.dumps(asdict(config), sort_keys=True).encode())
    for part in (texts, *lexicon):
        digest.update(b"\x00section\x00")
        for text in part:
            digest.update(text.encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def _transfer_case(source: str, target: str) -> str:
    if source.islower():
        return target
    return "".join(t.upper() if s.isupper() else t for s, t in zip(source, target, strict=True))


class AccentRestorer:
    """Restores Vietnamese diacritics; build with :meth:`train` or :meth:`load`."""

    def __init__(self, tables: _Tables, config: RestorerConfig, fingerprint: str = "") -> None:
        self._t = tables
        self.config = config
        self.fingerprint = fingerprint

    # -------------------------------------------------------------- building

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        lexicon: Sequence[Sequence[str]] | None = None,
        config: RestorerConfig | None = None,
    ) -> AccentRestorer:
        """Train on sentences ``texts`` plus word lists (default: :func:`default_lexicon`)."""
        config = config or RestorerConfig()
        text_list = [unicodedata.normalize("NFC", t) for t in texts]
        lexicon_list = default_lexicon() if lexicon is None else [list(x) for x in lexicon]
        tables = _build(text_list, lexicon_list, config)
        return cls(tables, config, _fingerprint(text_list, lexicon_list, config))

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct syllables the model knows."""
        return len(self._t.vocab) - len(_SPECIALS)

    def candidates(self, syllable: str) -> list[str]:
        """Accented forms the model may choose for ``syllable`` (lower case)."""
        folded = fold_accents(syllable).lower()
        return [self._t.vocab[i] for i in self._t.candidates.get(folded, ())]

    # -------------------------------------------------------------- decoding

    def restore(self, text: str) -> str:
        """Add diacritics to syllables written without them; the rest is kept."""
        text = unicodedata.normalize("NFC", text)
        pieces: list[str] = []
        pos = 0
        for spans in _segments(text):
            words = [text[a:b] for a, b in spans]
            restored = self._restore_segment(words)
            for (a, b), new in zip(spans, restored, strict=True):
                pieces.append(text[pos:a])
                pieces.append(new)
                pos = b
        pieces.append(text[pos:])
        return "".join(pieces)

    def _restore_segment(self, words: list[str]) -> list[str]:
        t = self._t
        slots: list[tuple[int, ...]] = []
        for word in words:
            lower = word.lower()
            if has_diacritics(lower):
                known = t.index.get(normalize_tone_marks(lower))
                slots.append((known,) if known is not None else ())
            else:
                slots.append(t.candidates.get(lower, ()))
        result = list(words)
        start = 0
        # Unknown syllables split the segment like punctuation does.
        for end in range(len(slots) + 1):
            if end == len(slots) or not slots[end]:
                if end > start:
                    best = self._decode(slots[start:end])
                    for k, ident in enumerate(best, start):
                        if not has_diacritics(words[k]):
                            result[k] = _transfer_case(words[k], t.vocab[ident])
                start = end + 1
        return result

    def _decode(self, slots: list[tuple[int, ...]]) -> list[int]:
        t = self._t
        trigram, bigram, bow2, bow1, unigram = t.trigram, t.bigram, t.bow2, t.bow1, t.unigram
        shift = _SHIFT
        beam_width = self.config.beam_width
        # state (w_{i-1}, w_i) -> (score, back-pointer chain)
        beams: dict[tuple[int, int], tuple[float, Any]] = {(_BOS, _BOS): (0.0, None)}
        for cands in [*slots, (_EOS,)]:
            new: dict[tuple[int, int], tuple[float, Any]] = {}
            for (a, b), (score, chain) in beams.items():
                k2 = a * shift + b
                back2 = bow2.get(k2, 0.0)
                kb = b * shift
                back1 = bow1[b]
                k2s = k2 * shift
                for c in cands:
                    lp = trigram.get(k2s + c)
                    if lp is None:
                        lp2 = bigram.get(kb + c)
                        lp = back2 + (lp2 if lp2 is not None else back1 + unigram[c])
                    total = score + lp
                    key = (b, c)
                    old = new.get(key)
                    if old is None or total > old[0]:
                        new[key] = (total, (chain, c))
            if len(new) > beam_width:
                new = dict(heapq.nlargest(beam_width, new.items(), key=lambda kv: kv[1][0]))
            beams = new
        _score, chain = max(beams.values(), key=lambda v: v[0])
        path: list[int] = []
        while chain is not None:
            chain, ident = chain
            path.append(ident)
        path.reverse()
        return path[:-1]  # drop </s>

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Write a gzip'd JSON artifact (deterministic bytes) atomically."""
        t = self._t
        payload = {
            "format": ARTIFACT_FORMAT,
            "version": ARTIFACT_VERSION,
            "fingerprint": self.fingerprint,
            "config": asdict(self.config),
            "vocab": t.vocab,
            "unigram": t.unigram,
            "bow1": t.bow1,
            "bigram": [list(t.bigram), list(t.bigram.values())],
            "bow2": [list(t.bow2), list(t.bow2.values())],
            "trigram": [list(t.trigram), list(t.trigram.values())],
            "candidates": {k: list(v) for k, v in t.candidates.items()},
        }
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".accent-", dir=path.parent)
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            ):
                gz.write(data)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> AccentRestorer:
        """Load an artifact written by :meth:`save`."""
        try:
            with gzip.open(path, "rb") as fh:
                payload = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise AccentModelError(f"cannot read accent model {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise AccentModelError(f"{path} is not an accent-restorer artifact")
        if payload.get("version") != ARTIFACT_VERSION:
            raise AccentModelError(
                f"{path} has version {payload.get('version')}, expected {ARTIFACT_VERSION}"
            )
        try:
            tables = _Tables(
                vocab=list(payload["vocab"]),
                unigram=list(payload["unigram"]),
                bow1=list(payload["bow1"]),
                bigram=dict(zip(*payload["bigram"], strict=True)),
                bow2=dict(zip(*payload["bow2"], strict=True)),
                trigram=dict(zip(*payload["trigram"], strict=True)),
                candidates={k: tuple(v) for k, v in payload["candidates"].items()},
            )
            config = RestorerConfig(**payload["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AccentModelError(f"{path} is malformed: {exc}") from exc
        return cls(tables, config, str(payload.get("fingerprint", "")))


def load_or_train(
    models_dir: Path,
    extra_dirs: Iterable[Path] = (),
    config: RestorerConfig | None = None,
    extra_texts: Iterable[str] = (),
) -> AccentRestorer:
    """Load the cached model from ``models_dir/accent/`` or train and cache it.

    ``extra_texts`` are further in-domain sentences with diacritics (the service passes
    the risk corpus's training messages, see ``assistant.services.load_restorer``).

    The cache key hashes the training texts, the word list, the config and
    ``ARTIFACT_VERSION``; a change of any of them retrains. Stale artifacts in
    that directory are removed.
    """
    config = config or RestorerConfig()
    texts = [unicodedata.normalize("NFC", t) for t in default_training_texts(list(extra_dirs))]
    texts.extend(unicodedata.normalize("NFC", t) for t in extra_texts)
    lexicon = default_lexicon()
    fingerprint = _fingerprint(texts, lexicon, config)
    directory = Path(models_dir) / "accent"
    path = directory / f"accent-{fingerprint[:16]}.json.gz"
    if path.exists():
        try:
            restorer = AccentRestorer.load(path)
        except AccentModelError as exc:
            log.warning("accent model cache unusable, retraining: %s", exc)
        else:
            if restorer.fingerprint == fingerprint:
                return restorer
            log.warning("accent model %s has a different fingerprint, retraining", path)
    log.info("training the accent restorer on %d sentences", len(texts))
    tables = _build(texts, lexicon, config)
    restorer = AccentRestorer(tables, config, fingerprint)
    restorer.save(path)
    for stale in directory.glob("accent-*.json.gz"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return restorer
