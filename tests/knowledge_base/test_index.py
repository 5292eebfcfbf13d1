from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.embedders import FakeEmbedder
from knowledge_base.index import IndexNotReady, KnowledgeIndex, bm25_tokens
from tests.knowledge_base.conftest import write_article

pytestmark = pytest.mark.integration


def make_index(tmp_path: Path, content: Path) -> KnowledgeIndex:
    return KnowledgeIndex(tmp_path / "index", FakeEmbedder(), content)


def test_bm25_tokens_are_folded_with_bigrams() -> None:
    assert bm25_tokens("Mật khẩu!") == ["mat", "khau", "mat_khau"]


def test_ingest_is_idempotent(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    first = index.ingest()
    assert (first.articles, first.added, first.removed) == (3, first.chunks, 0)
    second = make_index(tmp_path, small_kb).ingest()
    assert (second.added, second.removed, second.unchanged) == (0, 0, first.chunks)
    assert index.store._collection.count() == first.chunks


def test_changed_and_removed_articles_are_reindexed_incrementally(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    total = index.ingest().chunks
    path = small_kb / "nguoi-la.md"
    path.write_text(path.read_text().replace("không cần đồng ý", "có thể từ chối"), encoding="utf-8")
    (small_kb / "family-link.md").unlink()
    again = make_index(tmp_path, small_kb)
    report = again.ingest()
    assert report.articles == 2
    assert report.added == 2  # the two chunks of the changed article
    assert report.removed == 2 + 2  # its old chunks + the removed article's
    assert again.store._collection.count() == total - 2


def test_load_refuses_a_stale_index(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    with pytest.raises(IndexNotReady, match="ingest"):
        index.load()
    index.ingest()
    write_article(small_kb, "moi", "Bài mới", "Một câu.\n")
    with pytest.raises(IndexNotReady):
        make_index(tmp_path, small_kb).load()
    assert make_index(tmp_path, small_kb).ensure() is not None


def test_audience_filter_applies_to_both_legs(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    index.ingest()
    q = "cai family link cho con"
    assert index.search_bm25(q, audience="parent")[0].article.id == "family-link"
    assert all(h.article.id != "family-link" for h in index.search_bm25(q, audience="child"))
    assert all(h.article.id != "family-link" for h in index.search_dense(q, audience="child"))
    assert all(h.article.audience in ("parent", "both") for h in index.search(q, q, audience="parent"))


def test_age_band_filter(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    index.ingest()
    hits = index.search("family link", "family link", audience="parent", age_band="16-17")
    assert all("16-17" in h.article.age_band for h in hits)


def test_hybrid_fuses_both_legs(tmp_path: Path, small_kb: Path) -> None:
    index = make_index(tmp_path, small_kb)
    index.ingest()
    hits = index.search("mat khau manh", "mật khẩu mạnh", audience="child")
    assert hits[0].article.id == "mat-khau"
    assert set(hits[0].ranks) == {"bm25_section", "dense_section"}
