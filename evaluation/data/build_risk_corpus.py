#!/usr/bin/env python3
"""Build the labelled risk corpus from the hand-written seeds.

Reads every ``risk/seeds/*.jsonl`` (one seed message per line) and writes
``risk/messages.jsonl``: each seed plus the variants real users type for it

* ``folded``   - the seed with every tone/vowel mark removed (``đ`` -> ``d``),
* ``teencode`` - whole tokens rewritten with the teen-code map below
  (``không`` -> ``ko``/``k``, ``được`` -> ``dc``, ...), sometimes also folded,
* ``typo``     - one adjacent-key or dropped-letter typo in a word of >= 4
  letters.

Everything random is drawn from ``random.Random`` seeded with the SHA-256 of
the seed id, so a build is byte-for-byte reproducible and adding one seed
never changes another seed's variants.

Split rule (see ``evaluation/data/LABELING.md``): a *group* is a seed and its
variants; all of a group is in one split. Groups whose texts collide after
lower-casing, accent folding and punctuation stripping are merged first and
named by their lexicographically smallest group id, so no text (in that
normalised form) can land in both splits. Groups are then stratified by
(primary category, severity); inside each stratum they are ordered by
``sha256(group id)`` and the first ``round(0.22 * n)`` (at least one when the
stratum has two or more) are ``heldout``. Every category/severity cell is
therefore in the held-out split at about 22%. Conversations
(``risk/conversations.jsonl``) are split the same way by their id within
(pattern, writing style); the builder writes it into their ``split`` field.

Standard library only; it must not import the ``assistant`` package.

Usage::

    python3 evaluation/data/build_risk_corpus.py           # build + summary
    python3 evaluation/data/build_risk_corpus.py --check   # exit 1 if stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SEEDS_DIR = HERE / "risk" / "seeds"
DEFAULT_MESSAGES = HERE / "risk" / "messages.jsonl"
DEFAULT_CONVERSATIONS = HERE / "risk" / "conversations.jsonl"

HELDOUT_SHARE = 0.22

HIGH_CATEGORIES = (
    "sexual_abuse",
    "grooming",
    "sextortion",
    "intimate_image_abuse",
    "self_harm",
    "violence",
    "trafficking",
)
LOW_CATEGORIES = ("cyberbullying", "scam", "harmful_content", "privacy", "excessive_use")
CATEGORIES = (*HIGH_CATEGORIES, *LOW_CATEGORIES, "none")
STYLES = ("diacritics", "no_diacritics", "teencode", "mixed")
AUDIENCES = ("child", "parent")
PATTERNS = (
    "grooming",
    "announced_disclosure",
    "self_harm_escalation",
    "parent_disclosure",
    "benign",
)
VARIANT_SUFFIX = {"folded": "~v1", "teencode": "~v2", "typo": "~v3"}

SEED_FIELDS = ("id", "text", "audience", "severity", "categories")
OUTPUT_KEYS = (
    "id",
    "group",
    "text",
    "audience",
    "speaker",
    "about",
    "severity",
    "categories",
    "primary",
    "escalate",
    "hard_negative",
    "style",
    "variant",
    "split",
    "batch",  # only on rows of a later batch (a seeds/ sub-folder)
)
CONVERSATION_KEYS = (
    "id",
    "audience",
    "pattern",
    "style",
    "turns",
    "turn_severity",
    "final_severity",
    "categories",
    "split",
    "note",
)


Record = dict[str, Any]  # one JSON line: a seed, a message or a conversation


class CorpusError(Exception):
    """A seed or conversation file that cannot be used (``--strict``)."""


# --------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Remove Vietnamese tone and vowel marks; ``đ``/``Đ`` become ``d``/``D``."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped)


def has_diacritics(text: str) -> bool:
    return fold(text) != nfc(text)


_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def norm_key(text: str) -> str:
    """The form in which two texts count as the same for the split.

    Lower-cased, accent-folded, punctuation dropped, whitespace collapsed.
    """
    text = fold(nfc(text)).lower()
    text = _NON_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def stable_hash(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)


def heldout_count(n: int, share: float = HELDOUT_SHARE) -> int:
    """How many of ``n`` items in one stratum are held out."""
    k = int(n * share + 0.5)
    return max(k, 1) if n >= 2 else k


def assign_splits(items: Iterable[tuple[str, object]], share: float = HELDOUT_SHARE) -> dict[str, str]:
    """``{key: "train"|"heldout"}`` for ``(key, stratum)`` pairs.

    Within each stratum the keys are ordered by ``sha256(key)`` and the first
    ``heldout_count(n)`` are held out. A key keeps its split as long as its
    stratum's size does not move the cut past it.
    """
    strata: dict[object, list[str]] = {}
    for key, stratum in items:
        strata.setdefault(stratum, []).append(key)
    result: dict[str, str] = {}
    for keys in strata.values():
        ordered = sorted(set(keys), key=lambda k: (stable_hash(k), k))
        cut = heldout_count(len(ordered), share)
        for i, key in enumerate(ordered):
            result[key] = "heldout" if i < cut else "train"
    return result


def conversation_splits(convs: list[Record]) -> dict[str, str]:
    """Split of each valid conversation, stratified by (pattern, writing style)."""
    return assign_splits((c["id"], (c["pattern"], c["style"])) for c in convs if "_raw" not in c)


def rng_for(seed_id: str) -> random.Random:
    return random.Random(int(hashlib.sha256(("variants:" + seed_id).encode("utf-8")).hexdigest(), 16))


# --------------------------------------------------------------------------
# Teen code
# --------------------------------------------------------------------------

# Applied to whole tokens (or whole multi-word phrases) of text WITH
# diacritics. The first option is the most common spelling; one option is
# drawn per occurrence.
TEENCODE_MAP: dict[str, tuple[str, ...]] = {
    "như thế nào": ("ntn",),
    "bây giờ": ("bh", "bjo"),
    "tin nhắn": ("tn",),
    "nhắn tin": ("nt", "ib"),
    "không": ("ko", "k", "hok", "hong"),
    "được": ("dc", "đc", "dk"),
    "gì": ("j",),
    "biết": ("bt", "bik"),
    "với": ("vs",),
    "rồi": ("r", "rùi"),
    "người": ("ng",),
    "mình": ("mk", "mik"),
    "bạn": ("bn", "b"),
    "em": ("e",),
    "anh": ("a",),
    "chị": ("cj", "c"),
    "nói": ("ns",),
    "làm": ("lm",),
    "vậy": ("z", "v", "zậy"),
    "quá": ("wa", "wá", "qá"),
    "yêu": ("iu",),
    "thích": ("thik", "thix"),
    "cũng": ("cx", "cũg"),
    "giờ": ("h",),
    "chưa": ("chx",),
    "vẫn": ("vx",),
    "thôi": ("thui",),
    "luôn": ("lun",),
    "nhiều": ("nhìu",),
    "muốn": ("mún",),
    "buồn": ("bùn",),
    "trường": ("trg",),
    "gia đình": ("gđ",),
    "facebook": ("fb",),
    "ừ": ("uk", "ừa"),
}

# For seeds written WITHOUT diacritics only unambiguous folded words are
# rewritten: "anh" may be "ảnh" (a photo), "ban" may be "bán" (to sell),
# "noi" may be "nơi", "lam" may be "lắm", "buon" may be "buôn" (buôn người).
TEENCODE_MAP_FOLDED: dict[str, tuple[str, ...]] = {
    "nhu the nao": ("ntn",),
    "bay gio": ("bh",),
    "tin nhan": ("tn",),
    "nhan tin": ("nt", "ib"),
    "khong": ("ko", "k", "hok"),
    "duoc": ("dc", "dk"),
    "gi": ("j",),
    "biet": ("bt", "bik"),
    "nguoi": ("ng",),
    "minh": ("mk", "mik"),
    "em": ("e",),
    "thich": ("thik",),
    "chua": ("chx",),
    "nhieu": ("nhiu",),
    "luon": ("lun",),
    "facebook": ("fb",),
}


def _phrase_regex(mapping: dict[str, tuple[str, ...]]) -> re.Pattern[str]:
    phrases = sorted(mapping, key=len, reverse=True)
    alternation = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in phrases)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


_TC_RE = _phrase_regex(TEENCODE_MAP)
_TC_FOLDED_RE = _phrase_regex(TEENCODE_MAP_FOLDED)


def _match_case(original: str, replacement: str) -> str:
    if original[:1].isupper() and not original.isupper():
        return replacement[:1].upper() + replacement[1:]
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    return replacement


def teencode(text: str, rng: random.Random, keep_prob: float = 0.85) -> str:
    """Rewrite whole tokens with the teen-code map; unchanged text if none apply.

    Each matching token is rewritten with probability ``keep_prob`` (people
    are not consistent), but at least one is always rewritten.
    """
    text = nfc(text)
    folded_source = not has_diacritics(text)
    regex, mapping = (_TC_FOLDED_RE, TEENCODE_MAP_FOLDED) if folded_source else (_TC_RE, TEENCODE_MAP)
    matches = list(regex.finditer(text))
    if not matches:
        return text
    chosen = [rng.random() < keep_prob for _ in matches]
    if not any(chosen):
        chosen[rng.randrange(len(matches))] = True
    out: list[str] = []
    pos = 0
    for match, use in zip(matches, chosen, strict=True):
        out.append(text[pos : match.start()])
        word = match.group(0)
        if use:
            key = _SPACES.sub(" ", word.lower())
            out.append(_match_case(word, rng.choice(mapping[key])))
        else:
            out.append(word)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------
# Typos
# --------------------------------------------------------------------------

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    grid = {ch: (r, c) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    result: dict[str, str] = {}
    for ch, (r, c) in grid.items():
        near = [
            other
            for other, (r2, c2) in grid.items()
            if other != ch and abs(r2 - r) <= 1 and abs((c2 + 0.5 * r2) - (c + 0.5 * r)) <= 1
        ]
        result[ch] = "".join(sorted(near))
    return result


ADJACENT_KEYS = _neighbours()
_WORD_RE = re.compile(r"\w+")


def typo(text: str, rng: random.Random, min_len: int = 4) -> str:
    """One adjacent-key substitution or one dropped letter in a long word.

    Only plain ASCII letters after the first letter of the word are touched,
    so the word stays recognisable. Returns the text unchanged when it has no
    word of ``min_len`` letters or more.
    """
    text = nfc(text)
    words = [m for m in _WORD_RE.finditer(text) if len(m.group(0)) >= min_len and not m.group(0).isdigit()]
    if not words:
        return text
    word = rng.choice(words)
    positions = [
        word.start() + i for i, ch in enumerate(word.group(0)) if i > 0 and ch.lower() in ADJACENT_KEYS
    ]
    if not positions:
        return text
    pos = rng.choice(positions)
    ch = text[pos]
    if rng.random() < 0.5:
        return text[:pos] + text[pos + 1 :]
    new = rng.choice(ADJACENT_KEYS[ch.lower()])
    return text[:pos] + (new.upper() if ch.isupper() else new) + text[pos + 1 :]


# --------------------------------------------------------------------------
# Seeds -> messages
# --------------------------------------------------------------------------


@dataclass
class Report:
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    seeds: int = 0
    skipped_lines: int = 0
    duplicate_ids: int = 0
    duplicate_texts: int = 0
    merged_groups: int = 0
    label_conflicts: int = 0
    label_warnings: int = 0
    later_batch_dropped: int = 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _validate_seed(seed: object) -> str | None:
    """Return why a seed is unusable, or None."""
    if not isinstance(seed, dict):
        return "not a JSON object"
    missing = [f for f in SEED_FIELDS if f not in seed]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(seed["id"], str) or not seed["id"] or "~" in seed["id"]:
        return "id must be a non-empty string without '~'"
    if not isinstance(seed["text"], str) or not seed["text"].strip():
        return "empty text"
    sev = seed["severity"]
    if not isinstance(sev, int) or isinstance(sev, bool) or not 0 <= sev <= 4:
        return f"severity {sev!r} not an integer 0-4"
    cats = seed["categories"]
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        return "categories must be a list of codes"
    unknown = [c for c in cats if c not in CATEGORIES]
    if unknown:
        return f"unknown categories {unknown}"
    if seed["audience"] not in AUDIENCES:
        return f"audience {seed['audience']!r}"
    if sev >= 3 and (not cats or cats[0] not in HIGH_CATEGORIES):
        return f"severity {sev} needs a high primary category, got {primary_of(cats)}"
    if sev > 0 and not cats:
        return f"severity {sev} with no category"
    return None


def primary_of(categories: list[str]) -> str:
    """The first (most severe) category, or ``none`` for an empty list."""
    return categories[0] if categories else "none"


def _label_warning(seed: Record) -> str | None:
    """Labels that are usable but look inconsistent with TAXONOMY.md."""
    sev, cats = seed["severity"], seed["categories"]
    if sev == 0 and cats not in ([], ["none"]):
        return "severity 0 but categories are not [] or ['none']"
    if sev > 0 and primary_of(cats) == "none":
        return f"severity {sev} with primary 'none'"
    if "none" in cats and len(cats) > 1:
        return "'none' together with other categories"
    return None


def seed_files(seeds_dir: Path) -> list[Path]:
    """Batch 1 is ``seeds/*.jsonl``; each sub-folder (``seeds/batch2/``...) is a
    later batch, read after it in name order."""
    files = sorted(p for p in seeds_dir.glob("*.jsonl") if p.is_file())
    for folder in sorted(p for p in seeds_dir.iterdir() if p.is_dir()) if seeds_dir.is_dir() else []:
        files += sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    return files


def load_seeds(seeds_dir: Path, report: Report, strict: bool = False) -> list[Record]:
    seeds: list[Record] = []
    seen_ids: set[str] = set()
    for path in seed_files(seeds_dir):
        report.files += 1
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{path.name}:{lineno}"
                try:
                    seed = json.loads(line)
                except json.JSONDecodeError as exc:
                    problem: str | None = f"invalid JSON ({exc.msg})"
                else:
                    problem = _validate_seed(seed)
                if problem:
                    if strict:
                        raise CorpusError(f"{where}: {problem}")
                    report.skipped_lines += 1
                    report.warn(f"{where}: skipped, {problem}")
                    continue
                odd = _label_warning(seed)
                if odd:
                    report.label_warnings += 1
                    report.warn(f"{where}: kept, {odd}")
                if seed["id"] in seen_ids:
                    report.duplicate_ids += 1
                    report.warn(f"{where}: duplicate id {seed['id']!r}, skipped")
                    continue
                seen_ids.add(seed["id"])
                if path.parent != seeds_dir:
                    seed["_batch"] = path.parent.name
                seeds.append(seed)
    report.seeds = len(seeds)
    return seeds


def seed_style(seed: Record) -> str:
    style = seed.get("style")
    if isinstance(style, str) and style in STYLES:
        return style
    return "diacritics" if has_diacritics(seed["text"]) else "no_diacritics"


def variants_for(seed: Record) -> list[tuple[str, str, str]]:
    """``[(variant, text, style), ...]`` for one seed, the seed itself first."""
    text = nfc(seed["text"]).strip()
    style = seed_style(seed)
    rng = rng_for(seed["id"])
    out = [("seed", text, style)]
    accented = has_diacritics(text)
    if accented:
        # A folded teen-code seed is still teen code; anything else folded
        # (including Vietnamese-English mixes) is typed "no_diacritics".
        out.append(("folded", fold(text), "teencode" if style == "teencode" else "no_diacritics"))
    tc = teencode(text, rng)
    if tc != text:
        # About half the people who type teen code also drop the accents.
        if accented and rng.random() < 0.5:
            tc = fold(tc)
        out.append(("teencode", tc, "teencode"))
    # The typo lands on the seed or, for accented seeds, on the folded form.
    base = fold(text) if accented and rng.random() < 0.35 else text
    ty = typo(base, rng)
    if ty != base:
        ty_style = style if base == text else out[1][2]
        out.append(("typo", ty, ty_style))
    return out


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Keep the lexicographically smallest id as the root.
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def build_messages(seeds: list[Record], report: Report) -> list[Record]:
    """Seeds + variants, exact duplicates dropped, split decided per group.

    A seed whose text repeats an earlier seed's text is dropped whole (its
    variants would only be near-copies). A variant whose text already exists
    is dropped. Groups whose texts - kept or dropped - share a normalised
    form are merged for the split, so near-copies never straddle it.
    """
    rows: list[Record] = []
    seen_text: dict[str, Record] = {}
    seed_texts: dict[str, str] = {}
    uf = _UnionFind()
    group_by_key: dict[str, str] = {}

    def link(text: str, group: str) -> None:
        key = norm_key(text)
        other = group_by_key.setdefault(key, group)
        if uf.find(other) != uf.find(group):
            uf.union(other, group)
            report.merged_groups += 1

    batch_of: dict[str, str] = {}
    for seed in seeds:
        cats = list(seed["categories"])
        severity = seed["severity"]
        group = seed["id"]
        candidates = variants_for(seed)
        batch = seed.get("_batch", "")
        if batch and any(
            batch_of.get(uf.find(group_by_key[norm_key(text)]), "") != batch
            for _, text, _ in candidates
            if norm_key(text) in group_by_key
        ):
            # A later batch never joins an earlier batch's group: that could
            # move a message into (or out of) the earlier held-out split.
            report.later_batch_dropped += 1
            report.warn(f"seed {group} of {batch} repeats an earlier batch's message, dropped")
            continue
        uf.find(group)
        batch_of[group] = batch
        seed_text = candidates[0][1]
        if seed_text in seed_texts:
            report.duplicate_texts += 1
            first = seen_text[seed_text]
            if (first["severity"], first["primary"]) != (severity, primary_of(cats)):
                report.label_conflicts += 1
                report.warn(
                    f"seed {group} repeats the text of {seed_texts[seed_text]} with other labels: {seed_text!r}"
                )
            else:
                report.warn(f"seed {group} repeats the text of {seed_texts[seed_text]}, dropped")
            continue
        seed_texts[seed_text] = group
        for variant, text, style in candidates:
            link(text, group)
            if text in seen_text:
                other = seen_text[text]
                if other["group"] != group:
                    report.duplicate_texts += 1
                    if (other["severity"], other["primary"]) != (severity, primary_of(cats)):
                        report.label_conflicts += 1
                        report.warn(f"{variant} of {group} repeats {other['id']} with other labels: {text!r}")
                continue
            row = {
                "id": group + VARIANT_SUFFIX.get(variant, ""),
                "group": group,
                "text": text,
                "audience": seed["audience"],
                "speaker": seed.get("speaker"),
                "about": seed.get("about"),
                "severity": severity,
                "categories": cats,
                "primary": primary_of(cats),
                "escalate": severity >= 3,
                "hard_negative": bool(seed.get("hard_negative", False)),
                "style": style,
                "variant": variant,
                "split": "",
            }
            if batch:
                row["batch"] = batch
            seen_text[text] = row
            rows.append(row)

    # One stratum entry per merged component, labelled by its root group.
    # (The root's own label when it has rows, else the component's first.)
    first_label: dict[str, tuple[str, int]] = {}
    own_label: dict[str, tuple[str, int]] = {}
    for row in rows:
        root = uf.find(row["group"])
        label = (row["primary"], row["severity"])
        first_label.setdefault(root, label)
        if row["group"] == root:
            own_label.setdefault(root, label)
    # Strata are per batch: a later batch is split among its own groups by the
    # same rule, so adding one never moves a group of an earlier batch.
    splits = assign_splits(
        (root, (*own_label.get(root, label), batch_of.get(root, ""))) for root, label in first_label.items()
    )
    for row in rows:
        row["split"] = splits[uf.find(row["group"])]
    return rows


def dumps(row: Record, keys: Iterable[str]) -> str:
    return json.dumps({k: row[k] for k in keys if k in row}, ensure_ascii=False)


def render_messages(rows: list[Record]) -> str:
    return "".join(dumps(row, OUTPUT_KEYS) + "\n" for row in rows)


# --------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------


def _validate_conversation(conv: object) -> str | None:
    if not isinstance(conv, dict):
        return "not a JSON object"
    for key in (
        "id",
        "audience",
        "pattern",
        "style",
        "turns",
        "turn_severity",
        "final_severity",
        "categories",
    ):
        if key not in conv:
            return f"missing {key}"
    if conv["audience"] not in AUDIENCES:
        return f"audience {conv['audience']!r}"
    if conv["pattern"] not in PATTERNS:
        return f"pattern {conv['pattern']!r}"
    if conv["style"] not in STYLES:
        return f"style {conv['style']!r}"
    turns, sev = conv["turns"], conv["turn_severity"]
    if (
        not isinstance(turns, list)
        or not 3 <= len(turns) <= 8
        or not all(isinstance(t, str) and t.strip() for t in turns)
    ):
        return "turns must be 3-8 non-empty strings"
    if (
        not isinstance(sev, list)
        or len(sev) != len(turns)
        or not all(isinstance(s, int) and 0 <= s <= 4 for s in sev)
    ):
        return "turn_severity must have one severity 0-4 per turn"
    if any(b < a for a, b in pairwise(sev)):
        return "turn_severity decreases"
    if conv["final_severity"] != sev[-1]:
        return "final_severity != last turn_severity"
    cats = conv["categories"]
    if not isinstance(cats, list) or not cats or any(c not in CATEGORIES for c in cats):
        return "bad categories"
    if sev[-1] >= 3 and cats[0] not in HIGH_CATEGORIES:
        return "severity >= 3 needs a high primary category"
    if sev[-1] == 0 and cats != ["none"]:
        return "severity 0 must have categories ['none']"
    return None


def load_conversations(path: Path, report: Report, strict: bool = False) -> list[Record]:
    if not path.exists():
        return []
    convs: list[Record] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                conv = json.loads(line)
            except json.JSONDecodeError as exc:
                problem: str | None = f"invalid JSON ({exc.msg})"
            else:
                problem = _validate_conversation(conv)
                if problem is None and conv["id"] in seen:
                    problem = f"duplicate id {conv['id']!r}"
            if problem:
                if strict:
                    raise CorpusError(f"{where}: {problem}")
                report.warn(f"{where}: {problem}")
                convs.append({"_raw": line.rstrip("\n")})
                continue
            seen.add(conv["id"])
            convs.append(conv)
    return convs


def render_conversations(convs: list[Record]) -> str:
    splits = conversation_splits(convs)
    lines = []
    for conv in convs:
        if "_raw" in conv:  # keep an invalid line as written; it was reported
            lines.append(conv["_raw"])
            continue
        conv = dict(conv)
        conv["split"] = splits[conv["id"]]
        keys = [k for k in CONVERSATION_KEYS if k in conv] + [k for k in conv if k not in CONVERSATION_KEYS]
        lines.append(dumps(conv, keys))
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------
# Summary and entry point
# --------------------------------------------------------------------------


def _table(
    title: str, counter: Counter[Any], by_split: dict[str, Counter[Any]], order: Iterable[Any] | None = None
) -> list[str]:
    keys = list(order) if order is not None else sorted(counter, key=str)
    keys = [k for k in keys if counter.get(k)]
    lines = [f"{title:<22}{'total':>7}{'train':>7}{'heldout':>8}"]
    for k in keys:
        lines.append(f"  {str(k):<20}{counter[k]:>7}{by_split['train'][k]:>7}{by_split['heldout'][k]:>8}")
    return lines


def summary(rows: list[Record], convs: list[Record], report: Report) -> str:
    out = [
        f"seed files: {report.files}   seeds: {report.seeds}   messages: {len(rows)}",
        f"skipped lines: {report.skipped_lines}   duplicate ids: {report.duplicate_ids}   "
        f"duplicate texts dropped: {report.duplicate_texts}   label conflicts: {report.label_conflicts}   "
        f"groups merged for the split: {report.merged_groups}   odd labels kept: {report.label_warnings}   "
        f"later-batch seeds dropped as repeats of earlier batches: {report.later_batch_dropped}",
    ]
    if rows:
        heldout = sum(r["split"] == "heldout" for r in rows)
        out.append(f"held-out share of messages: {heldout / len(rows):.1%}")
    tables: tuple[tuple[str, str, Iterable[Any]], ...] = (
        ("split", "split", ("train", "heldout")),
        ("primary category", "primary", CATEGORIES),
        ("severity", "severity", range(5)),
        ("style", "style", STYLES),
        ("variant", "variant", ("seed", "folded", "teencode", "typo")),
        ("hard_negative", "hard_negative", (True, False)),
        ("escalate", "escalate", (True, False)),
        ("audience", "audience", AUDIENCES),
    )
    for title, key, order in tables:
        counter = Counter(r[key] for r in rows)
        by_split = {s: Counter(r[key] for r in rows if r["split"] == s) for s in ("train", "heldout")}
        out.extend(_table(title, counter, by_split, order))
    if rows:
        out.append("messages by category x severity (any listed category; [] counts as none)")
        out.append(f"  {'':<20}" + "".join(f"{sev:>7}" for sev in range(5)))
        cells = Counter((code, r["severity"]) for r in rows for code in (r["categories"] or ["none"]))
        for code in CATEGORIES:
            out.append(f"  {code:<20}" + "".join(f"{cells[(code, sev)]:>7}" for sev in range(5)))
    valid = [c for c in convs if "_raw" not in c]
    if valid:
        splits = conversation_splits(valid)
        held = sum(splits[c["id"]] == "heldout" for c in valid)
        out.append(f"conversations: {len(valid)}   held out: {held} ({held / len(valid):.1%})")
        conversation_tables: tuple[tuple[str, str, Iterable[Any]], ...] = (
            ("pattern", "pattern", PATTERNS),
            ("final_severity", "final_severity", range(5)),
            ("conversation style", "style", STYLES),
        )
        for title, key, order in conversation_tables:
            counter = Counter(c[key] for c in valid)
            by_split = {
                s: Counter(c[key] for c in valid if splits[c["id"]] == s) for s in ("train", "heldout")
            }
            out.extend(_table(title, counter, by_split, order))
    return "\n".join(out)


def _write_atomic(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; keep normal file modes
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds-dir", type=Path, default=DEFAULT_SEEDS_DIR, help="folder of seed *.jsonl files"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_MESSAGES, help="messages.jsonl to write")
    parser.add_argument(
        "--conversations",
        type=Path,
        default=DEFAULT_CONVERSATIONS,
        help="conversations.jsonl whose 'split' field is filled in (skipped if missing)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the outputs are stale")
    parser.add_argument("--strict", action="store_true", help="fail on any invalid seed or conversation line")
    parser.add_argument("--quiet", action="store_true", help="no summary")
    args = parser.parse_args(argv)

    report = Report()
    try:
        seeds = load_seeds(args.seeds_dir, report, strict=args.strict)
        convs = load_conversations(args.conversations, report, strict=args.strict)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = build_messages(seeds, report)
    messages_text = render_messages(rows)
    conversations_text = render_conversations(convs) if convs else None

    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)

    if args.check:
        stale = []
        if _read(args.out) != messages_text:
            stale.append(str(args.out))
        if conversations_text is not None and _read(args.conversations) != conversations_text:
            stale.append(str(args.conversations))
        if stale:
            print(
                "stale: " + ", ".join(stale) + "\nrun: python3 evaluation/data/build_risk_corpus.py",
                file=sys.stderr,
            )
            return 1
        if not args.quiet:
            print(f"up to date: {len(rows)} messages from {report.seeds} seeds, {len(convs)} conversations")
        return 0

    if _read(args.out) != messages_text:
        _write_atomic(args.out, messages_text)
    if conversations_text is not None and _read(args.conversations) != conversations_text:
        _write_atomic(args.conversations, conversations_text)
    if not args.quiet:
        print(summary(rows, convs, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
