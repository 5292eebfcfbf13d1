"""The risk corpus's messages the accent restorer learns from (``accent_training_texts``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.risk.model import CORPUS_FILE, accent_training_texts
from assistant.text import has_diacritics

pytestmark = pytest.mark.unit


def test_only_training_split_messages_with_diacritics() -> None:
    rows = [json.loads(line) for line in CORPUS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    heldout = {r["text"] for r in rows if r["split"] == "heldout"}
    train = {r["text"] for r in rows if r["split"] == "train"}
    texts = accent_training_texts()
    assert len(texts) > 5000
    assert all(has_diacritics(t) for t in texts)
    assert set(texts) <= train
    # A text both splits share (a short common phrase) may come from the training split;
    # nothing that only the held-out split has is ever used.
    assert not set(texts) & (heldout - train)


def test_a_missing_corpus_gives_no_texts(tmp_path: Path) -> None:
    assert accent_training_texts(tmp_path / "missing.jsonl") == []
