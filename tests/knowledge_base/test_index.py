from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from knowledge_base.embedders import FakeEmbedder
from knowledge_base.index import (
    CLASSIFIER_WEIGHT,
    LEG_WEIGHTS,
    Hit,
    IndexNotReady,
    KnowledgeIndex,
    bm25_tokens,
)
from tests.knowledge_base.conftest import write_article

pytestmark = pytest.mark.integration


def make_index(tmp_path: Path, content: Path) -> KnowledgeIndex:
    return KnowledgeIndex(tmp_path / "index", FakeEmbedder(), content)


def fused_part(index: KnowledgeIndex, hit: Hit) -> float:
    """A hit's weighted RRF score plus its article-classifier share (before bonus and mismatch)."""
    rrf = sum(LEG_WEIGHTS[leg] / (index.rrf_k + rank) for leg, rank in hit.ranks.items())
    return rrf + CLASSIFIER_WEIGHT * hit.raw["classifier"]


def add_front_matter(path: Path, lines: str) -> None:
    """Add front-matter ``lines`` (each ending in a newline) to the article at ``path``."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("version: 1\n", "version: 1\n" + lines, 1), encoding="utf-8")


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


def _platform_article(folder: Path, article_id: str, app: str, questions: str = "") -> None:
    (folder / f"{article_id}.md").write_text(
        f"""---
id: {article_id}
title: "Cài đặt riêng tư trên {app}"
audience: child
age_band: ["12-15"]
topics: [privacy, {app.lower()}]
sources:
  - title: "Trung tâm trợ giúp {app}"
reviewed_at: 2026-11-20
version: 1
{questions}---
# Cài đặt riêng tư trên {app}

Em nên để tài khoản {app} ở chế độ riêng tư để người lạ không xem được bài đăng.

## Em nên làm gì
1. Vào phần cài đặt quyền riêng tư.
2. Chọn chỉ bạn bè xem bài đăng.
""",
        encoding="utf-8",
    )


def test_platforms_of_articles_and_queries(tmp_path: Path) -> None:
    from knowledge_base.articles import parse_article
    from knowledge_base.index import article_platforms, query_platforms

    _platform_article(tmp_path, "ig", "Instagram")
    assert article_platforms(parse_article(tmp_path / "ig.md")) == {"instagram"}
    assert query_platforms("lam sao de instagram cua em rieng tu") == {"instagram"}
    assert query_platforms("chan nguoi la tren messenger va zalo") == {"facebook", "zalo"}
    assert query_platforms("choi free fire voi lien quan") == {"moba"}
    assert query_platforms("lam sao de tai khoan rieng tu") == frozenset()


def test_articles_for_another_platform_are_scored_down(tmp_path: Path) -> None:
    from knowledge_base.index import PLATFORM_MISMATCH

    content = tmp_path / "content"
    content.mkdir()
    _platform_article(content, "fb", "Facebook")
    _platform_article(content, "ig", "Instagram")
    index = make_index(tmp_path, content)
    index.ingest()
    general = {h.article.id: h.score for h in index.search("che do rieng tu", "chế độ riêng tư")}
    assert set(general) == {"fb", "ig"}
    hits = index.search("instagram che do rieng tu", "instagram chế độ riêng tư")
    assert hits[0].article.id == "ig"
    named = {h.article.id: h for h in hits}
    assert named["fb"].score == pytest.approx(fused_part(index, named["fb"]) * PLATFORM_MISMATCH)


def test_a_near_duplicate_sample_question_gains_a_bonus(tmp_path: Path, small_kb: Path) -> None:
    from knowledge_base.index import NEAR_DUPLICATE

    add_front_matter(small_kb / "nguoi-la.md", 'questions:\n  - "mat khau cua em bi lo thi sao"\n')
    index = make_index(tmp_path, small_kb)
    index.ingest()
    query = "mat khau cua em bi lo thi sao"
    hits = {h.article.id: h for h in index.search(query, query, skip_dense=False)}
    hit = hits["nguoi-la"]
    assert hit.raw["dense"] == pytest.approx(1.0)
    assert hit.score == pytest.approx(fused_part(index, hit) + NEAR_DUPLICATE[1])
    other = hits["mat-khau"]
    assert other.score == pytest.approx(fused_part(index, other))


def test_resolve_follows_the_aliases_of_merged_articles(tmp_path: Path, small_kb: Path) -> None:
    add_front_matter(small_kb / "mat-khau.md", "aliases: [mat-khau-cu]\n")
    index = make_index(tmp_path, small_kb)
    index.ingest()
    assert index.resolve("mat-khau").id == "mat-khau"  # type: ignore[union-attr]
    assert index.resolve("mat-khau-cu").id == "mat-khau"  # type: ignore[union-attr]
    assert index.resolve("khong-co") is None


def test_query_cache_shares_an_entry_across_case_spacing_and_punctuation(tmp_path: Path, small_kb: Path) -> None:
    from knowledge_base.index import query_cache_key

    assert query_cache_key("  Làm sao  CHẶN người lạ?! ") == "làm sao chặn người lạ"
    index = make_index(tmp_path, small_kb)
    index.ingest()
    first = index.embed_query("Làm sao chặn người lạ?")
    second = index.embed_query("làm sao  chặn người lạ")
    assert second is first
    assert (index.query_cache_misses, index.query_cache_hits) == (1, 1)


def test_dense_legs_are_skipped_only_when_bm25_is_decisive(tmp_path: Path, small_kb: Path) -> None:
    from knowledge_base.index import DENSE_SKIP

    add_front_matter(small_kb / "mat-khau.md", 'questions:\n  - "dat mat khau manh dai bao nhieu ky tu"\n')
    index = make_index(tmp_path, small_kb)
    index.ingest()
    query = "dat mat khau manh dai bao nhieu ky tu"
    section = index.search_bm25(query, kind="section")
    question = index.search_bm25(query, kind="question")
    assert section[0].article.id == question[0].article.id == "mat-khau"
    assert question[0].raw["bm25"] >= DENSE_SKIP[0]

    hits = index.search(query, query)
    assert hits[0].article.id == "mat-khau"
    assert set(hits[0].ranks) == {"bm25_section", "bm25_question"}
    assert index.dense_skips == 1 and index.query_cache_misses == 0

    full = index.search(query, query, skip_dense=False)
    assert full[0].article.id == "mat-khau"
    assert {"dense_section", "dense_question"} <= set(full[0].ranks)
    assert index.dense_skips == 1 and index.query_cache_misses == 1

    index.search("bat xac thuc", "bật xác thực")  # no sample question matches: not decisive
    assert index.dense_skips == 1

    # A no-answer threshold above the decisive score keeps the dense legs: a skipped
    # query would have no dense score to clear it with.
    score = question[0].raw["bm25"]
    kept = index.search(query, query, relevant_bm25=score + 0.01)
    assert {"dense_section", "dense_question"} <= set(kept[0].ranks)
    assert index.dense_skips == 1
    index.search(query, query, relevant_bm25=score)
    assert index.dense_skips == 2


def test_the_article_classifier_separates_siblings_that_share_words(tmp_path: Path) -> None:
    """Two articles share most words; the classifier learns the words that tell them
    apart from their sample questions, and its probability is part of the fused score."""
    content = tmp_path / "content"
    content.mkdir()
    shared = """\
        Khi bị bắt nạt trên mạng, hãy kể với người lớn và giữ bằng chứng.

        ## Em nên làm gì
        1. Kể với bố mẹ hoặc thầy cô.
        2. Giữ lại tin nhắn.
        """
    write_article(content, "bi-bat-nat", "Bị bắt nạt trên mạng", shared,
                  extra='questions:\n  - "tui no lap nhom chui em"\n  - "ca lop tay chay em tren nhom chat"\n')
    write_article(content, "ban-bi-bat-nat", "Bạn bị bắt nạt trên mạng", shared,
                  extra='questions:\n  - "ban than cua em bi ca lop che cuoi"\n  - "giup ban minh dang bi trêu tren mang"\n')
    index = make_index(tmp_path, content)
    index.ingest()
    query = "ban than cua em bi che cuoi tren nhom lop"
    hits = {h.article.id: h for h in index.search(query, query, skip_dense=False)}
    assert hits["ban-bi-bat-nat"].raw["classifier"] > 0.5 > hits["bi-bat-nat"].raw["classifier"]
    assert hits["ban-bi-bat-nat"].raw["classifier"] + hits["bi-bat-nat"].raw["classifier"] == pytest.approx(1.0)
    for hit in hits.values():
        assert hit.score == pytest.approx(fused_part(index, hit))
    assert max(hits.values(), key=lambda h: h.score).article.id == "ban-bi-bat-nat"


def test_the_article_classifier_is_cached_next_to_the_index(
    tmp_path: Path, small_kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge_base import classifier

    index = make_index(tmp_path, small_kb)
    index.ingest()
    cached = list((tmp_path / "index").glob("article-classifier-*.pkl"))
    assert len(cached) == 1

    def no_training(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("retrained although the cache is current")

    monkeypatch.setattr(classifier.ArticleClassifier, "train", no_training)
    reloaded = make_index(tmp_path, small_kb)
    reloaded.load()
    assert reloaded.search("mat khau manh", "mật khẩu mạnh")[0].raw["classifier"] > 0
    monkeypatch.undo()

    # A corrupt cache is retrained (never fatal); a changed corpus replaces the old file.
    cached[0].write_bytes(b"not a pickle")
    make_index(tmp_path, small_kb).load()
    assert cached[0].read_bytes() != b"not a pickle"
    add_front_matter(small_kb / "nguoi-la.md", 'questions:\n  - "nguoi la ket ban"\n')
    make_index(tmp_path, small_kb).ingest()
    now = list((tmp_path / "index").glob("article-classifier-*.pkl"))
    assert len(now) == 1 and now != cached


def test_article_classifier_probabilities_equal_scikit_learns(small_kb: Path) -> None:
    from knowledge_base.articles import load_articles
    from knowledge_base.classifier import ArticleClassifier

    articles = load_articles(small_kb)
    for clf in (ArticleClassifier.train(articles, str.lower), ArticleClassifier.train(articles[:2], str.lower)):
        check_against_scikit_learn(clf)


def check_against_scikit_learn(clf: Any) -> None:
    from scipy import sparse

    for text in ("mat khau manh", "", "nguoi la ket ban 🌱", "family link " * 30):
        features = sparse.hstack([clf._words.transform([text]), clf._chars.transform([text])]).tocsr()
        expected = clf._model.predict_proba(features)[0]
        assert clf.probabilities(text) == pytest.approx(expected, abs=1e-9)
        assert clf.probabilities(text).sum() == pytest.approx(1.0)


def test_a_single_article_needs_no_classifier(tmp_path: Path, small_kb: Path) -> None:
    for extra in ("nguoi-la.md", "family-link.md"):
        (small_kb / extra).unlink()
    index = make_index(tmp_path, small_kb)
    index.ingest()
    hit = index.search("mat khau", "mật khẩu")[0]
    assert hit.article.id == "mat-khau" and "classifier" not in hit.raw


def test_an_agreeing_classifier_settles_bm25_without_the_margins(small_kb: Path) -> None:
    from knowledge_base.articles import load_articles
    from knowledge_base.index import CLASSIFIER_SKIP, DENSE_SKIP, bm25_decisive

    articles = {a.id: a for a in load_articles(small_kb)}

    def hits(*scored: tuple[str, float]) -> list[Hit]:
        return [Hit(articles[aid], 0.0, articles[aid].chunks()[0], raw={"bm25": s}) for aid, s in scored]

    strong = DENSE_SKIP[0] + 1.0
    # Both legs agree, but the runner-up is close: the margins alone do not settle it.
    section = hits(("mat-khau", 5.0), ("nguoi-la", 4.9))
    question = hits(("mat-khau", strong), ("nguoi-la", strong - 0.1))
    assert not bm25_decisive(section, question)
    assert bm25_decisive(section, question, classifier_probability={"mat-khau": CLASSIFIER_SKIP}.__getitem__)
    assert not bm25_decisive(
        section, question, classifier_probability={"mat-khau": CLASSIFIER_SKIP - 0.01}.__getitem__
    )
    # The classifier never lowers the bar on the BM25 score, the no-answer threshold or agreement.
    sure = {"mat-khau": 1.0}.get
    weak = hits(("mat-khau", DENSE_SKIP[0] - 0.5))
    assert not bm25_decisive(section, weak, classifier_probability=lambda aid: sure(aid, 0.0))
    assert not bm25_decisive(section, question, strong + 1, classifier_probability=lambda aid: sure(aid, 0.0))
    other = hits(("nguoi-la", strong), ("mat-khau", strong - 0.1))
    assert not bm25_decisive(section, other, classifier_probability=dict.fromkeys(articles, 1.0).__getitem__)
