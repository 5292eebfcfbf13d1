from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.articles import CONTENT_DIR, parse_article
from knowledge_base.check import check_directory, reading_level, sentences
from tests.knowledge_base.conftest import write_article

pytestmark = pytest.mark.unit


def problems_of(folder: Path) -> list[str]:
    return [str(p) for p in check_directory(folder)[1]]


def test_clean_folder_has_no_problems(small_kb: Path) -> None:
    assert problems_of(small_kb) == []


def test_missing_metadata_is_rejected(small_kb: Path) -> None:
    (small_kb / "bad.md").write_text("---\nid: bad\ntitle: x\n---\n# x\n", encoding="utf-8")
    assert any("bad.md: missing metadata: audience" in p for p in problems_of(small_kb))


def test_no_front_matter_is_rejected(small_kb: Path) -> None:
    (small_kb / "plain.md").write_text("# Chỉ có tiêu đề\n", encoding="utf-8")
    assert any("plain.md" in p and "front matter" in p for p in problems_of(small_kb))


def test_duplicate_ids_are_rejected(small_kb: Path) -> None:
    write_article(small_kb, "copy", "Bản sao", "Một câu ngắn.\n").write_text(
        (small_kb / "copy.md").read_text().replace("id: copy", "id: mat-khau"), encoding="utf-8"
    )
    found = problems_of(small_kb)
    assert any("duplicate id 'mat-khau'" in p for p in found)
    assert any("does not match the file name" in p for p in found)


def test_broken_links_are_rejected(small_kb: Path) -> None:
    write_article(small_kb, "lien-ket", "Liên kết", "Đọc thêm [bài này](kb:khong-co).\n", related="[cung-khong-co]")
    found = problems_of(small_kb)
    assert any("unknown article 'khong-co'" in p for p in found)
    assert any("unknown article 'cung-khong-co'" in p for p in found)


def test_child_text_above_reading_level_is_rejected(small_kb: Path) -> None:
    long_sentence = " ".join(["chữ"] * 35) + "."
    write_article(small_kb, "dai-qua", "Dài quá", long_sentence + "\n")
    assert any("dai-qua.md: reading level" in p and "35 syllables" in p for p in problems_of(small_kb))


def test_same_sentence_is_fine_for_parents(small_kb: Path) -> None:
    long_sentence = " ".join(["chữ"] * 35) + "."
    write_article(small_kb, "cho-phu-huynh", "Cho phụ huynh", long_sentence + "\n", audience="parent")
    assert problems_of(small_kb) == []


def test_bad_audience_and_age_band_are_rejected(small_kb: Path) -> None:
    write_article(small_kb, "sai", "Sai", "Câu ngắn.\n", audience="teacher", age_band='["5-7"]')
    found = problems_of(small_kb)
    assert any("audience 'teacher'" in p for p in found)
    assert any("age_band" in p for p in found)


def test_sentence_splitting_counts_list_items() -> None:
    sents = sentences("# Tiêu đề\n\nCâu một. Câu hai!\n1. Bước một\n2. Bước hai: làm ngay\n")
    assert sents == ["Tiêu đề", "Câu một", "Câu hai", "Bước một", "Bước hai", "làm ngay"]


def test_mean_and_longest_sentence(small_kb: Path) -> None:
    mean, longest, _ = reading_level(parse_article(small_kb / "mat-khau.md"))
    assert 0 < mean <= 16 and longest <= 30


def test_bundled_knowledge_base_passes_the_check() -> None:
    articles, problems = check_directory(CONTENT_DIR)
    assert [str(p) for p in problems] == []
    assert len(articles) >= 120


def test_alias_colliding_with_an_id_is_rejected(small_kb: Path) -> None:
    write_article(small_kb, "gop", "Bài gộp", "Một câu.\n", extra="aliases: [mat-khau]\n")
    assert any("alias 'mat-khau'" in p for p in problems_of(small_kb))


def test_link_to_a_merged_article_names_the_survivor(small_kb: Path) -> None:
    write_article(small_kb, "gop", "Bài gộp", "Một câu.\n", extra="aliases: [bai-cu]\n")
    write_article(small_kb, "lien-ket", "Liên kết", "Đọc [bài cũ](kb:bai-cu).\n", related="[bai-cu]")
    found = problems_of(small_kb)
    assert sum("link to merged article 'bai-cu': link to 'gop' instead" in p for p in found) == 2
    assert not any("unknown article" in p for p in found)


@pytest.mark.parametrize(
    ("old", "survivor"),
    [
        ("b-ke-voi-nguoi-lon-tin-cay", "a-nguoi-lon-tin-cay"),
        ("b-khi-ban-be-ke-chuyen", "a-giup-ban-gap-chuyen-tren-mang"),
        ("b-bao-cao-tren-ung-dung", "a-bao-cao-noi-dung-doc-hai"),
        ("b-nguoi-la-tang-qua-game", "a-nguoi-la-tang-qua-nap-the"),
        ("b-luu-bang-chung", "a-luu-bang-chung"),
        ("a-khi-con-ke-bi-xam-hai", "b-khi-con-ke-bi-xam-hai"),
    ],
)
def test_merged_articles_keep_their_old_ids_as_aliases(old: str, survivor: str) -> None:
    articles, _ = check_directory(CONTENT_DIR)
    by_id = {a.id: a for a in articles}
    assert old not in by_id
    assert old in by_id[survivor].aliases
