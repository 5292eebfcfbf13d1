"""AccentRestorer: behaviour, held-out accuracy, speed, determinism, caching."""

from __future__ import annotations

import gzip
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistant.text import AccentModelError, AccentRestorer, accents, fold_accents, load_or_train
from assistant.text.accents import (
    HELDOUT_PERCENT,
    chat_corpus,
    default_training_texts,
    is_heldout,
    markdown_sentences,
    split_vlsp,
)
from evaluation.accent_restoration import CHAT_SENTENCES, ambiguous_forms, score

pytestmark = pytest.mark.slow

# Measured 2026-11 (python -m evaluation.accent_restoration): held-out VLSP 97.4 %
# overall / 97.3 % ambiguous (pyvi 77.2 % / 76.4 %); chat set 94.9 % with the knowledge
# base, 97.5 % as the service trains it (with the risk corpus's messages; pyvi 67.8 %).
HELDOUT_FLOOR = 0.95
HELDOUT_AMBIGUOUS_FLOOR = 0.95
CHAT_FLOOR = 0.85
MAX_RESTORE_MS = 2.0

# 15 syllables, typical chat length.
FIFTEEN_SYLLABLES = "co mot nguoi la cu nhan tin doi em gui anh rieng tu cho anh"


class TestRestore:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("toi muon doi mat khau", "tôi muốn đổi mật khẩu"),
            ("em bi nguoi ta doa", "em bị người ta doạ"),
            ("lam sao de bao ve con tren mang", "làm sao để bảo vệ con trên mạng"),
            ("hoa binh", "hoà bình"),
        ],
    )
    def test_restores_common_messages(self, restorer: AccentRestorer, text: str, expected: str) -> None:
        assert restorer.restore(text) == expected

    def test_keeps_case_and_punctuation(self, restorer: AccentRestorer) -> None:
        assert restorer.restore("Toi muon DOI MAT KHAU!!") == "Tôi muốn ĐỔI MẬT KHẨU!!"
        out = restorer.restore("Chao ban, minh co the giup gi?")
        assert fold_accents(out) == "Chao ban, minh co the giup gi?"
        assert out.startswith("Chào")

    def test_syllables_with_diacritics_stay_fixed(self, restorer: AccentRestorer) -> None:
        assert restorer.restore("em bí nguoi ta doa").split()[1] == "bí"
        assert restorer.restore("Em bị người ta doạ") == "Em bị người ta doạ"

    def test_non_vietnamese_tokens_are_kept(self, restorer: AccentRestorer) -> None:
        text = "gui qua facebook, zalo hoac https://x.vn/toi luc 10h, 5k"
        out = restorer.restore(text)
        assert fold_accents(out) == text
        for token in ("facebook", "zalo", "https://x.vn/toi", "10h", "5k"):
            assert token in out

    def test_empty_and_symbol_only_text(self, restorer: AccentRestorer) -> None:
        assert restorer.restore("") == ""
        assert restorer.restore("123 ?! 😭") == "123 ?! 😭"

    def test_output_differs_from_input_only_by_accents(self, restorer: AccentRestorer) -> None:
        for sentence in CHAT_SENTENCES[:20]:
            source = fold_accents(sentence)
            assert fold_accents(restorer.restore(source)) == source

    def test_candidates(self, restorer: AccentRestorer) -> None:
        assert {"dọa", "doạ"} & set(restorer.candidates("doa"))
        assert restorer.candidates("qwerty") == []

    def test_is_fast_enough_for_every_message(self, restorer: AccentRestorer) -> None:
        assert len(FIFTEEN_SYLLABLES.split()) == 15
        restorer.restore(FIFTEEN_SYLLABLES)
        runs = []
        for _ in range(50):
            start = time.perf_counter()
            restorer.restore(FIFTEEN_SYLLABLES)
            runs.append((time.perf_counter() - start) * 1000)
        assert statistics.median(runs) < MAX_RESTORE_MS


class TestHeldOutAccuracy:
    def test_split_is_deterministic_and_large_enough(self) -> None:
        train, heldout = split_vlsp()
        assert len(heldout) / (len(train) + len(heldout)) >= 0.15
        assert HELDOUT_PERCENT >= 15
        assert all(is_heldout(s) for s in heldout)
        assert not any(is_heldout(s) for s in train)
        assert split_vlsp() == (train, heldout)

    def test_heldout_is_never_trained_on(self) -> None:
        _train, heldout = split_vlsp()
        assert not set(heldout) & set(default_training_texts())

    def test_chat_test_set_is_not_in_the_training_corpus(self) -> None:
        assert not set(CHAT_SENTENCES) & set(chat_corpus())

    def test_vlsp_heldout_accuracy(self, restorer: AccentRestorer) -> None:
        _train, heldout = split_vlsp()
        result = score(restorer.restore, heldout, ambiguous_forms())
        assert result.syllables > 10_000
        assert result.accuracy >= HELDOUT_FLOOR
        assert result.ambiguous_accuracy >= HELDOUT_AMBIGUOUS_FLOOR

    def test_chat_accuracy(self, restorer: AccentRestorer) -> None:
        assert score(restorer.restore, CHAT_SENTENCES, ambiguous_forms()).accuracy >= CHAT_FLOOR

    def test_beats_pyvi_on_the_same_sentences(self, restorer: AccentRestorer) -> None:
        from evaluation.accent_restoration import _pyvi_restore

        pyvi = _pyvi_restore()
        if pyvi is None:
            pytest.skip("pyvi is not installed")
        _train, heldout = split_vlsp()
        sample = heldout[:150]
        ambiguous = ambiguous_forms()
        ours = score(restorer.restore, sample, ambiguous).accuracy
        theirs = score(pyvi, sample, ambiguous).accuracy
        assert ours >= theirs + 0.10


class TestTrainingAndCache:
    def test_training_is_deterministic_across_processes(
        self, restorer: AccentRestorer, accent_models_dir: Path, tmp_path: Path
    ) -> None:
        here = accent_models_dir / "accent" / f"accent-{restorer.fingerprint[:16]}.json.gz"
        other = tmp_path / "other"
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from assistant.text.accents import load_or_train
            load_or_train(Path({str(other)!r}))
            """
        )
        env = {**os.environ, "PYTHONHASHSEED": "12345"}
        subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=Path.cwd())
        there = next((other / "accent").glob("accent-*.json.gz"))
        assert there.name == here.name
        assert there.read_bytes() == here.read_bytes()

    def test_save_and_load_round_trip(self, restorer: AccentRestorer, tmp_path: Path) -> None:
        path = tmp_path / "model.json.gz"
        restorer.save(path)
        loaded = AccentRestorer.load(path)
        assert loaded.fingerprint == restorer.fingerprint
        assert loaded.restore(FIFTEEN_SYLLABLES) == restorer.restore(FIFTEEN_SYLLABLES)

    def test_cached_model_is_reused(
        self, accent_models_dir: Path, restorer: AccentRestorer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_training(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("retrained although the cache is valid")

        monkeypatch.setattr(accents, "_build", no_training)
        assert load_or_train(accent_models_dir).fingerprint == restorer.fingerprint

    def test_new_training_text_retrains_and_replaces_the_cache(
        self, accent_models_dir: Path, restorer: AccentRestorer, tmp_path: Path
    ) -> None:
        models = tmp_path / "models"
        models.mkdir()
        for old in (accent_models_dir / "accent").glob("*.json.gz"):
            (models / "accent").mkdir(exist_ok=True)
            (models / "accent" / old.name).write_bytes(old.read_bytes())
        kb = tmp_path / "kb"
        kb.mkdir()
        (kb / "article.md").write_text(
            "---\ntitle: Xoá ảnh\n---\n# Gỡ ảnh nhạy cảm\n\nBạn có thể yêu cầu gỡ ảnh nhạy cảm.\n",
            encoding="utf-8",
        )
        updated = load_or_train(models, extra_dirs=[kb])
        assert updated.fingerprint != restorer.fingerprint
        files = list((models / "accent").glob("accent-*.json.gz"))
        assert [f.name for f in files] == [f"accent-{updated.fingerprint[:16]}.json.gz"]
        assert "nhạy" in updated.candidates("nhay")

    def test_extra_texts_are_trained_on_and_change_the_fingerprint(
        self, restorer: AccentRestorer, tmp_path: Path
    ) -> None:
        # A syllable no base corpus has ("Khuềnh", a made-up nickname) becomes a candidate.
        assert "khuềnh" not in restorer.candidates("khuenh")
        updated = load_or_train(tmp_path, extra_texts=["hôm nay Khuềnh rủ em đi chơi"])
        assert updated.fingerprint != restorer.fingerprint
        assert "khuềnh" in updated.candidates("khuenh")
        assert load_or_train(tmp_path, extra_texts=["hôm nay Khuềnh rủ em đi chơi"]).fingerprint == updated.fingerprint

    def test_risk_corpus_messages_lift_chat_accuracy(self, restorer: AccentRestorer, tmp_path: Path) -> None:
        """The service's restorer (``load_restorer``) also learns from the risk corpus's
        training messages; on the chat test sentences (never trained on) it must do better."""
        from assistant.risk.model import accent_training_texts

        chat = accent_training_texts()
        assert chat and not set(CHAT_SENTENCES) & set(chat)
        service = load_or_train(tmp_path, extra_texts=chat)
        ambiguous = ambiguous_forms()
        base = score(restorer.restore, CHAT_SENTENCES, ambiguous).accuracy
        assert score(service.restore, CHAT_SENTENCES, ambiguous).accuracy > base + 0.01

    def test_missing_extra_dir_is_skipped(self, tmp_path: Path) -> None:
        texts = list(default_training_texts([tmp_path / "missing"]))
        assert texts == list(default_training_texts())

    def test_corrupt_artifact_is_an_error(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json.gz"
        path.write_bytes(b"not gzip")
        with pytest.raises(AccentModelError):
            AccentRestorer.load(path)

    def test_other_version_is_an_error(self, restorer: AccentRestorer, tmp_path: Path) -> None:
        path = tmp_path / "model.json.gz"
        restorer.save(path)
        payload = json.loads(gzip.decompress(path.read_bytes()))
        payload["version"] = -1
        path.write_bytes(gzip.compress(json.dumps(payload).encode()))
        with pytest.raises(AccentModelError, match="version"):
            AccentRestorer.load(path)

    def test_no_training_text_is_an_error(self) -> None:
        with pytest.raises(AccentModelError, match="no Vietnamese training text"):
            AccentRestorer.train(["123 ok", "facebook"], lexicon=[])


def test_markdown_sentences() -> None:
    doc = textwrap.dedent(
        """\
        ---
        title: Mật khẩu
        tags: [an toàn]
        ---
        # Đổi mật khẩu

        - Mở **Cài đặt**. Chọn [Bảo mật](https://example.com/bao-mat).
        ```
        code = "không lấy"
        ```
        ![ảnh](img.png) Xong rồi!
        """
    )
    assert list(markdown_sentences(doc)) == [
        "Đổi mật khẩu",
        "Mở Cài đặt.",
        "Chọn Bảo mật.",
        "Xong rồi!",
    ]
