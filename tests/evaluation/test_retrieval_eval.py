"""The retrieval evaluation's split, metrics and dev-only error listing."""

from __future__ import annotations

from typing import Any

import pytest

from evaluation.retrieval import STYLES, dev_errors, load_questions, rank_metrics


@pytest.mark.unit
def test_rank_metrics_count_any_gold_id() -> None:
    metrics = rank_metrics([["a", "b"], ["c", "b"], ["x", "y"]], [["a"], ["b", "z"], ["q"]])
    assert metrics == {"r@1": 0.333, "r@5": 0.667, "mrr": 0.5, "n": 3}


@pytest.mark.unit
def test_gold_ids_are_real_articles_and_the_split_is_stable() -> None:
    from knowledge_base.articles import load_articles

    ids = {a.id for a in load_articles()} | {alias for a in load_articles() for alias in a.aliases}
    questions = load_questions()
    assert all(q.gold and set(q.gold) <= ids for q in questions)
    assert [q.split for q in questions] == [q.split for q in load_questions()]
    assert {q.split for q in questions} == {"dev", "heldout"}


@pytest.mark.integration
def test_dev_errors_never_show_a_held_out_question(services: Any) -> None:
    errors = dev_errors(services)
    assert set(errors) == set(STYLES)
    heldout = {q.id for q in load_questions() if q.split == "heldout"}
    rows = [row for rows in errors.values() for row in rows]
    assert rows and not {row["id"] for row in rows} & heldout
    assert all(row["top"] and row["top"][0][0] not in row["gold"] for row in rows)


@pytest.mark.unit
def test_no_evaluation_question_is_a_sample_question_of_an_article() -> None:
    """Sample questions are indexed; an evaluation question copied from one would be a
    free hit. Compared folded, lower case, without punctuation."""
    from assistant.text import fold_accents
    from knowledge_base.articles import load_articles

    def key(text: str) -> str:
        return " ".join("".join(c if c.isalnum() else " " for c in fold_accents(text).lower()).split())

    samples = {key(q) for a in load_articles() for q in a.questions}
    copied = [q.id for q in [*load_questions(), *load_questions("out_of_scope.jsonl")] if key(q.text) in samples]
    assert copied == []


@pytest.mark.unit
def test_style_labels_describe_the_text() -> None:
    from assistant.text import has_diacritics

    questions = load_questions()
    assert {q.style for q in questions} == set(STYLES)
    assert [q.id for q in questions if q.style == "no_diacritics" and has_diacritics(q.text)] == []
    assert [q.id for q in questions if q.style == "diacritics" and not has_diacritics(q.text)] == []
    assert {q.source for q in questions} == {"questions_a", "questions_b", "questions_c"}
    assert len({q.id for q in questions}) == len(questions)
