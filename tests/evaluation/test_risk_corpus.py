"""The labelled risk corpus: built files, conversations and the builder.

The corpus tests read ``evaluation/data/risk/messages.jsonl`` and
``conversations.jsonl`` as built; the builder tests run it on small seed files
in a temporary folder.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "evaluation" / "data"
BUILDER = DATA / "build_risk_corpus.py"
MESSAGES = DATA / "risk" / "messages.jsonl"
CONVERSATIONS = DATA / "risk" / "conversations.jsonl"


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_risk_corpus_under_test", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


brc = _load_builder()

HIGH = set(brc.HIGH_CATEGORIES)
LOW = set(brc.LOW_CATEGORIES)
STYLES = set(brc.STYLES)

# Severities each category must appear at (LABELING.md, "Coverage").
REQUIRED_SEVERITIES = {
    "self_harm": {1, 2, 3, 4},
    "grooming": {1, 2, 3, 4},
    "sexual_abuse": {1, 3, 4},
    "violence": {1, 3, 4},
    "trafficking": {1, 3, 4},
    "sextortion": {1, 3, 4},
    "intimate_image_abuse": {1, 3},
    **{code: {1, 2} for code in LOW},
    "none": {0},
}
PATTERN_MINIMUMS = {
    "grooming": 50,
    "announced_disclosure": 35,
    "self_harm_escalation": 30,
    "parent_disclosure": 15,
    "benign": 40,
}


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _run_builder(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILDER), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def messages() -> list[dict]:
    assert MESSAGES.exists(), "run: python3 evaluation/data/build_risk_corpus.py"
    return _read_jsonl(MESSAGES)


@pytest.fixture(scope="module")
def conversations() -> list[dict]:
    return _read_jsonl(CONVERSATIONS)


# --------------------------------------------------------------------------
# The built message corpus
# --------------------------------------------------------------------------


def test_corpus_is_up_to_date_with_the_seeds():
    result = _run_builder("--check")
    assert result.returncode == 0, result.stderr[-2000:]


def test_corpus_has_at_least_4000_messages(messages):
    assert len(messages) >= 4000


def test_corpus_has_at_least_1000_hard_negatives(messages):
    assert sum(m["hard_negative"] for m in messages) >= 1000


def test_hard_negatives_never_escalate(messages):
    bad = [m["id"] for m in messages if m["hard_negative"] and m["escalate"]]
    assert not bad


def test_every_category_appears_at_each_severity_it_can_have(messages):
    seen: dict[str, set[int]] = defaultdict(set)
    for m in messages:
        for code in m["categories"] or ["none"]:
            seen[code].add(m["severity"])
    missing = {
        code: sorted(wanted - seen[code])
        for code, wanted in REQUIRED_SEVERITIES.items()
        if wanted - seen[code]
    }
    assert not missing, f"category -> missing severities: {missing}"


def test_only_high_categories_lead_at_severity_3_and_above(messages):
    bad = [m["id"] for m in messages if m["severity"] >= 3 and m["primary"] not in HIGH]
    assert not bad


def test_message_fields_follow_the_contract(messages):
    for m in messages:
        assert set(m) == set(brc.OUTPUT_KEYS) - ({"batch"} if "batch" not in m else set()), m["id"]
        assert m["primary"] == (m["categories"][0] if m["categories"] else "none")
        assert (m["primary"] == "none") == (m["severity"] == 0), m["id"]
        assert m["escalate"] == (m["severity"] >= 3)
        assert m["style"] in STYLES
        assert m["split"] in {"train", "heldout"}
        assert m["id"] == m["group"] + brc.VARIANT_SUFFIX.get(m["variant"], "")
        assert all(code in brc.CATEGORIES for code in m["categories"])


def test_message_ids_and_texts_are_unique(messages):
    assert len({m["id"] for m in messages}) == len(messages)
    assert len({m["text"] for m in messages}) == len(messages)


def test_heldout_share_of_messages_is_at_least_20_percent(messages):
    heldout = sum(m["split"] == "heldout" for m in messages)
    assert heldout / len(messages) >= 0.20


def test_no_group_straddles_the_split(messages):
    splits: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        splits[m["group"]].add(m["split"])
    assert not [g for g, s in splits.items() if len(s) > 1]


def test_no_text_is_in_both_splits_after_folding(messages):
    by_text: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        by_text[brc.fold(m["text"]).lower().strip()].add(m["split"])
    assert not [t for t, s in by_text.items() if len(s) > 1]


def test_every_style_is_represented_in_the_heldout_split(messages):
    styles = {m["style"] for m in messages if m["split"] == "heldout"}
    assert styles >= STYLES


def test_heldout_split_has_escalations_and_hard_negatives(messages):
    heldout = [m for m in messages if m["split"] == "heldout"]
    assert any(m["escalate"] for m in heldout)
    assert any(m["hard_negative"] for m in heldout)


# --------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------


def test_at_least_150_conversations(conversations):
    assert len(conversations) >= 150


def test_each_conversation_pattern_has_its_minimum(conversations):
    counts = Counter(c["pattern"] for c in conversations)
    short = {p: counts[p] for p, n in PATTERN_MINIMUMS.items() if counts[p] < n}
    assert not short


def test_conversations_are_valid_and_distinct(conversations):
    assert len({c["id"] for c in conversations}) == len(conversations)
    assert len({tuple(c["turns"]) for c in conversations}) == len(conversations)
    for c in conversations:
        assert brc._validate_conversation(c) is None, c["id"]


def test_turn_severity_never_decreases(conversations):
    for c in conversations:
        sev = c["turn_severity"]
        assert all(a <= b for a, b in pairwise(sev)), c["id"]


def test_final_severity_is_the_last_turn_severity(conversations):
    for c in conversations:
        assert c["final_severity"] == c["turn_severity"][-1], c["id"]


def test_conversation_patterns_reach_their_levels(conversations):
    for c in conversations:
        final = c["final_severity"]
        if c["pattern"] == "benign":
            assert final <= 1, c["id"]
        elif c["pattern"] == "grooming":
            assert final >= 3 and c["categories"][0] == "grooming", c["id"]
            # the risk shows only across turns: no single opening turn is high
            assert c["turn_severity"][0] <= 1, c["id"]
        elif c["pattern"] in {"announced_disclosure", "parent_disclosure"}:
            assert final >= 3, c["id"]
    selfharm = [c["final_severity"] for c in conversations if c["pattern"] == "self_harm_escalation"]
    assert 4 in selfharm and {2, 3} & set(selfharm)


def test_conversation_styles_are_consistent(conversations):
    for c in conversations:
        if c["style"] == "no_diacritics":
            assert not any(brc.has_diacritics(t) for t in c["turns"]), c["id"]
    styles = Counter(c["style"] for c in conversations)
    assert set(styles) == STYLES
    assert styles["diacritics"] / len(conversations) >= 0.35


def test_conversation_split_follows_the_stratified_hash_rule(conversations):
    expected = brc.conversation_splits(conversations)
    for c in conversations:
        assert c["split"] == expected[c["id"]], c["id"]
    heldout = [c for c in conversations if c["split"] == "heldout"]
    assert 0.18 <= len(heldout) / len(conversations) <= 0.30
    assert {c["pattern"] for c in heldout} == set(PATTERN_MINIMUMS)
    assert {c["style"] for c in heldout} == STYLES
    assert {c["final_severity"] for c in heldout} >= {0, 3, 4}


# --------------------------------------------------------------------------
# The builder, on small synthetic seeds
# --------------------------------------------------------------------------


def _seed(seed_id: str, text: str, severity: int = 0, categories=None, **extra) -> dict:
    return {
        "id": seed_id,
        "text": text,
        "audience": "child",
        "speaker": "child",
        "about": "self",
        "severity": severity,
        "categories": ["none"] if categories is None else categories,
        "hard_negative": extra.pop("hard_negative", False),
        "style": extra.pop("style", "diacritics" if brc.has_diacritics(text) else "no_diacritics"),
        **extra,
    }


SYNTHETIC = [
    _seed("s-1", "Em không biết phải làm gì bây giờ, anh ấy bắt em gửi ảnh", 3, ["sextortion"]),
    _seed("s-2", "chán muốn chết, bài tập khó quá trời", 0, [], hard_negative=True),
    _seed("s-3", "e ko muon di hoc nua, tui no choc e hoai", 2, ["cyberbullying"], style="teencode"),
    _seed("s-4", "con toi khong biet nhu the nao de chan nguoi la tren facebook", 1, ["privacy"]),
    _seed("s-5", "Tối nay em uống hết lọ thuốc ngủ này", 4, ["self_harm"]),
    _seed("s-6", "Em buồn quá", 1, ["self_harm"]),
    _seed("s-7", "em buon qua!", 1, ["self_harm"]),
    _seed("s-8", "Em không biết phải làm gì bây giờ, anh ấy bắt em gửi ảnh", 3, ["sextortion"]),
]


def _write_seeds(folder: Path, seeds: list[dict], name: str = "high_test.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in seeds), encoding="utf-8")
    return path


def _build(tmp_path: Path, *extra: str) -> tuple[int, list[dict]]:
    out = tmp_path / "messages.jsonl"
    code = brc.main(
        [
            "--seeds-dir",
            str(tmp_path / "seeds"),
            "--out",
            str(out),
            "--conversations",
            str(tmp_path / "conversations.jsonl"),
            "--quiet",
            *extra,
        ]
    )
    return code, (_read_jsonl(out) if out.exists() else [])


def test_fold_removes_tone_marks_and_d_stroke():
    assert brc.fold("Đồng Nai, người được") == "Dong Nai, nguoi duoc"
    assert brc.has_diacritics("em ổn") and not brc.has_diacritics("em on")


def test_teencode_rewrites_whole_tokens_only():
    rng = random.Random(1)
    out = brc.teencode("Em không biết gì, kem ngon, gửi ảnh cho anh", rng, keep_prob=1.0)
    assert out.split()[0] == "E"
    assert out.split()[1] in brc.TEENCODE_MAP["không"]
    assert "kem" in out and "ảnh" in out  # "em" inside "kem", "ảnh" is not "anh"
    assert "a" in out.split()


def test_teencode_leaves_ambiguous_unaccented_words():
    out = brc.teencode("anh ay bat minh gui anh, ban nha", random.Random(3), keep_prob=1.0)
    assert out.startswith("anh ay") and "gui anh" in out and "ban nha" in out
    assert "mk" in out or "mik" in out


def test_typo_makes_exactly_one_small_edit():
    rng = random.Random(7)
    for _ in range(50):
        text = "hôm nay trời mưa nhiều quá"
        out = brc.typo(text, rng)
        assert out != text and abs(len(out) - len(text)) <= 1
        words, changed = text.split(), out.split()
        assert len(changed) == len(words)
        assert sum(a != b for a, b in zip(words, changed, strict=True)) == 1


def test_split_rule_holds_out_about_22_percent_of_every_stratum():
    items = [(f"g-{i}", i % 3) for i in range(3000)] + [("rare-1", "r"), ("rare-2", "r")]
    splits = brc.assign_splits(items)
    for stratum in range(3):
        keys = [k for k, s in items if s == stratum]
        share = sum(splits[k] == "heldout" for k in keys) / len(keys)
        assert abs(share - 0.22) < 0.001
    assert sorted(splits[k] for k in ("rare-1", "rare-2")) == ["heldout", "train"]
    assert brc.assign_splits(reversed(items)) == splits  # order does not matter


def test_adding_a_group_moves_at_most_the_groups_at_the_cut():
    items = [(f"g-{i}", 0) for i in range(500)]
    before = brc.assign_splits(items)
    after = brc.assign_splits([*items, ("g-new", 0)])
    moved = [k for k in before if before[k] != after[k]]
    assert len(moved) <= 1


def test_builder_output_is_deterministic_and_check_detects_staleness(tmp_path):
    seeds_file = _write_seeds(tmp_path / "seeds", SYNTHETIC)
    code, rows = _build(tmp_path)
    assert code == 0 and rows
    first = (tmp_path / "messages.jsonl").read_bytes()
    assert _build(tmp_path)[0] == 0
    assert (tmp_path / "messages.jsonl").read_bytes() == first
    assert _build(tmp_path, "--check")[0] == 0
    with seeds_file.open("a", encoding="utf-8") as handle:
        handle.write(
            json.dumps(_seed("s-9", "Hôm nay em được điểm mười môn toán"), ensure_ascii=False) + "\n"
        )
    assert _build(tmp_path, "--check")[0] == 1
    assert (tmp_path / "messages.jsonl").read_bytes() == first  # --check writes nothing


def test_builder_makes_variants_in_one_group_and_split(tmp_path):
    _write_seeds(tmp_path / "seeds", SYNTHETIC)
    _, rows = _build(tmp_path)
    by_id = {r["id"]: r for r in rows}
    assert by_id["s-1~v1"]["text"] == brc.fold(by_id["s-1"]["text"])
    assert by_id["s-1~v1"]["style"] == "no_diacritics"
    assert by_id["s-1~v2"]["style"] == "teencode" and by_id["s-1~v2"]["variant"] == "teencode"
    assert "s-3~v1" not in by_id  # no marks, nothing to fold
    for group in {r["group"] for r in rows}:
        members = [r for r in rows if r["group"] == group]
        assert len({r["split"] for r in members}) == 1
        assert len({(r["severity"], tuple(r["categories"]), r["hard_negative"]) for r in members}) == 1
    assert all(r["escalate"] == (r["severity"] >= 3) for r in rows)
    assert by_id["s-2"]["hard_negative"] and by_id["s-2~v1"]["hard_negative"]
    assert by_id["s-2"]["categories"] == [] and by_id["s-2"]["primary"] == "none"
    assert by_id["s-1"]["primary"] == "sextortion" and by_id["s-1"]["escalate"]


def test_builder_drops_duplicates_and_keeps_near_copies_in_one_split(tmp_path):
    _write_seeds(tmp_path / "seeds", SYNTHETIC)
    _, rows = _build(tmp_path)
    assert len({r["text"] for r in rows}) == len(rows)
    assert not [r for r in rows if r["group"] == "s-8"]  # same text as s-1
    split = {r["group"]: r["split"] for r in rows}
    assert split["s-6"] == split["s-7"]  # "Em buồn quá" ~ "em buon qua!"


def test_builder_keeps_near_copies_from_different_seeds_in_one_split(tmp_path):
    seeds = []
    for i in range(40):
        seeds.append(_seed(f"x-{i:02d}a", f"Mình sợ đi học lắm lần {i}", 2, ["cyberbullying"]))
        seeds.append(_seed(f"x-{i:02d}b", f"minh so di hoc lam lan {i}.", 2, ["cyberbullying"]))
    _write_seeds(tmp_path / "seeds", seeds)
    _, rows = _build(tmp_path)
    split = {r["group"]: r["split"] for r in rows}
    assert all(split[f"x-{i:02d}a"] == split[f"x-{i:02d}b"] for i in range(40))
    assert set(split.values()) == {"train", "heldout"}


def test_a_later_batch_is_split_among_itself_and_never_moves_an_earlier_group(tmp_path):
    regular = [_seed(f"r-{i:02d}", f"Em bị bạn chặn đường đòi tiền lần {i}", 2, ["cyberbullying"]) for i in range(30)]
    _write_seeds(tmp_path / "seeds", regular)
    _, before = _build(tmp_path)
    extra = [_seed(f"t-{i:02d}", f"Bạn trong lớp chặn đường đòi tiền em lần {i}", 2, ["cyberbullying"]) for i in range(20)]
    # a copy (after folding) of an earlier batch's seed: dropped, never joins its group
    extra.append(_seed("t-copy", "em bi ban chan duong doi tien lan 3", 2, ["cyberbullying"]))
    _write_seeds(tmp_path / "seeds" / "batch2", extra, name="xmod_test.jsonl")
    _, after = _build(tmp_path)
    split_before = {r["id"]: r["split"] for r in before}
    split_after = {r["id"]: r["split"] for r in after}
    assert {k: split_after[k] for k in split_before} == split_before
    new_groups = {r["group"]: r["split"] for r in after if r["group"].startswith("t-")}
    assert list(new_groups.values()).count("heldout") == brc.heldout_count(20)
    assert "t-copy" not in new_groups


def test_builder_reads_any_number_of_files_and_skips_bad_lines(tmp_path):
    seeds = tmp_path / "seeds"
    _write_seeds(seeds, SYNTHETIC[:3], "high_a.jsonl")
    _write_seeds(seeds, SYNTHETIC[3:6], "neg_b.jsonl")
    with (seeds / "mod_c.jsonl").open("w", encoding="utf-8") as handle:
        handle.write('{"id": "bad-1", "text": "thiếu nhãn"}\n')
        handle.write(json.dumps(_seed("bad-2", "lỗi mức độ", 3, ["scam"]), ensure_ascii=False) + "\n")
        handle.write(json.dumps(_seed("s-1", "trùng id"), ensure_ascii=False) + "\n")
        handle.write('{"id": "half-writ')  # a file still being written
    code, rows = _build(tmp_path)
    assert code == 0
    groups = {r["group"] for r in rows}
    assert groups == {"s-1", "s-2", "s-3", "s-4", "s-5", "s-6"}
    assert _build(tmp_path, "--strict")[0] == 2


def test_builder_with_no_seed_files_writes_an_empty_corpus(tmp_path):
    (tmp_path / "seeds").mkdir()
    code, rows = _build(tmp_path)
    assert code == 0 and rows == []


def test_builder_fills_the_conversation_split(tmp_path):
    _write_seeds(tmp_path / "seeds", SYNTHETIC[:2])
    conv = {
        "id": "cv-9001",
        "audience": "child",
        "pattern": "benign",
        "style": "diacritics",
        "turns": ["chào bạn", "em chán quá", "thôi em đi học bài"],
        "turn_severity": [0, 0, 0],
        "final_severity": 0,
        "categories": ["none"],
        "note": "test",
    }
    path = tmp_path / "conversations.jsonl"
    path.write_text(json.dumps(conv, ensure_ascii=False) + "\n", encoding="utf-8")
    assert _build(tmp_path, "--check")[0] == 1  # split missing
    assert _build(tmp_path)[0] == 0
    written = _read_jsonl(path)[0]
    assert written["split"] == brc.conversation_splits([conv])["cv-9001"]
    assert {k: v for k, v in written.items() if k != "split"} == conv
    assert _build(tmp_path, "--check")[0] == 0


def test_conversation_validation_rejects_a_dropping_severity():
    conv = {
        "id": "cv-9002",
        "audience": "child",
        "pattern": "announced_disclosure",
        "style": "diacritics",
        "turns": ["em muốn kể", "hứa nha", "chú sờ em", "thôi quên đi"],
        "turn_severity": [0, 1, 3, 1],
        "final_severity": 1,
        "categories": ["sexual_abuse"],
    }
    assert "decreases" in brc._validate_conversation(conv)


def test_builder_uses_only_the_standard_library():
    tree = ast.parse(BUILDER.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    assert "assistant" not in modules
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}
