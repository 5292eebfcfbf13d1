"""The article validator behind ``python -m assistant kb check``.

It rejects articles with missing or invalid metadata, duplicate ids, ids that
do not match the file name, broken links between articles, and text above the
reading level set for the audience. ``aliases`` lists the ids of articles merged
into this one (front matter ``aliases: [old-id]``), so old citations, evaluation gold
labels and ``KnowledgeIndex.resolve`` keep finding the survivor; the articles' own
``related`` and ``kb:`` links must name the survivor, not an alias (the widget and the
responder show only links to live ids).

Reading level (a simple, documented measure): the text is split into sentences
at ``.``, ``!``, ``?``, ``:`` and line breaks (so each list item is a sentence);
a sentence's length is its number of syllables (space-separated tokens that
contain a letter or digit; Vietnamese writes one syllable per token).

| audience         | mean syllables per sentence | longest sentence |
|------------------|-----------------------------|------------------|
| child, both      | <= 16                       | <= 30            |
| parent           | <= 24                       | <= 45            |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from knowledge_base.articles import (
    AGE_BANDS,
    AUDIENCES,
    Article,
    ArticleError,
    article_paths,
    parse_article,
)

READING_LEVEL: dict[str, tuple[float, int]] = {
    "child": (16.0, 30),
    "both": (16.0, 30),
    "parent": (24.0, 45),
}
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SENTENCE_END = re.compile(r"[.!?:]+(?=\s|$)|\n")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def sentences(body: str) -> list[str]:
    text = _MD_LINK.sub(r"\1", body)
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(#+|\d+[.)]|[-*])\s*", "", line)
        for part in _SENTENCE_END.split(line):
            if syllable_count(part):
                out.append(part.strip())
    return out


def syllable_count(sentence: str) -> int:
    return sum(1 for tok in sentence.split() if any(ch.isalnum() for ch in tok))


def reading_level(article: Article) -> tuple[float, int, str]:
    """(mean syllables per sentence, longest sentence length, the longest sentence)."""
    sents = sentences(article.body)
    if not sents:
        return 0.0, 0, ""
    lengths = [syllable_count(s) for s in sents]
    longest = max(range(len(sents)), key=lambda i: lengths[i])
    return sum(lengths) / len(lengths), lengths[longest], sents[longest]


def check_article(article: Article) -> list[str]:
    problems: list[str] = []
    if not _ID.match(article.id):
        problems.append(f"id {article.id!r} must be lower-case ASCII kebab-case")
    if article.path.stem != article.id:
        problems.append(f"id {article.id!r} does not match the file name {article.path.name!r}")
    if article.audience not in AUDIENCES:
        problems.append(f"audience {article.audience!r} must be one of {', '.join(AUDIENCES)}")
    bad_bands = [b for b in article.age_band if b not in AGE_BANDS]
    if bad_bands or not article.age_band:
        problems.append(f"age_band {list(article.age_band)} must use {', '.join(AGE_BANDS)}")
    if not article.title.strip():
        problems.append("empty title")
    if any(not s.get("title") for s in article.sources):
        problems.append("every source needs a title")
    try:
        date.fromisoformat(article.reviewed_at)
    except ValueError:
        problems.append(f"reviewed_at {article.reviewed_at!r} is not a date (YYYY-MM-DD)")
    if article.version < 1:
        problems.append("version must be >= 1")
    if not article.body.lstrip().startswith("# "):
        problems.append("body must start with the '# Title' heading")
    if article.audience in READING_LEVEL:
        max_mean, max_len = READING_LEVEL[article.audience]
        mean, longest, sentence = reading_level(article)
        if mean > max_mean:
            problems.append(
                f"reading level: mean {mean:.1f} syllables per sentence > {max_mean:g} for {article.audience}"
            )
        if longest > max_len:
            problems.append(
                f"reading level: a sentence of {longest} syllables > {max_len} for {article.audience}: "
                f"{sentence[:80]!r}"
            )
    return problems


def check_directory(content_dir: Path) -> tuple[list[Article], list[Problem]]:
    """Every problem in the folder (parsing continues past a broken file)."""
    articles: list[Article] = []
    problems: list[Problem] = []
    for path in article_paths(content_dir):
        try:
            articles.append(parse_article(path))
        except ArticleError as exc:
            problems.append(Problem(path.name, str(exc).split(": ", 1)[-1]))
    seen: dict[str, str] = {}
    for article in articles:
        if article.id in seen:
            problems.append(Problem(article.path.name, f"duplicate id {article.id!r} (also in {seen[article.id]})"))
        seen.setdefault(article.id, article.path.name)
        problems.extend(Problem(article.path.name, m) for m in check_article(article))
    for article in articles:
        for alias in article.aliases:
            if alias in seen:
                problems.append(Problem(article.path.name, f"alias {alias!r} is also an article id or alias"))
            seen.setdefault(alias, article.path.name)
    ids = {article.id for article in articles}
    merged_into = {alias: article.id for article in articles for alias in article.aliases}
    for article in articles:
        for target in article.links():
            if target in merged_into and target not in ids:
                problems.append(
                    Problem(
                        article.path.name,
                        f"link to merged article {target!r}: link to {merged_into[target]!r} instead",
                    )
                )
            elif target not in seen:
                problems.append(Problem(article.path.name, f"broken link to unknown article {target!r}"))
    if not articles and not problems:
        problems.append(Problem(str(content_dir), "no articles found"))
    return articles, problems
