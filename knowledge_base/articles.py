"""Curated articles: Markdown files with YAML front matter under ``content/``.

An article is split into chunks by ``##`` heading; the paragraph right after
the title is the summary chunk (it answers the article's main question).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

CONTENT_DIR = Path(__file__).resolve().parent / "content"
AUDIENCES = ("child", "parent", "both")
AGE_BANDS = ("8-11", "12-15", "16-17")
REQUIRED_FIELDS = ("id", "title", "audience", "age_band", "topics", "sources", "reviewed_at", "version")

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)
_ARTICLE_LINK = re.compile(r"\]\(kb:([a-z0-9-]+)\)")


class ArticleError(ValueError):
    """An article file cannot be parsed; the message names the file."""


@dataclass(frozen=True)
class Chunk:
    article_id: str
    order: int
    heading: str
    text: str

    @property
    def chunk_id(self) -> str:
        return f"{self.article_id}#{self.order}" if self.order >= 0 else f"{self.article_id}#q{-self.order}"

    @property
    def is_question(self) -> bool:
        return self.order < 0


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    audience: str
    age_band: tuple[str, ...]
    topics: tuple[str, ...]
    sources: tuple[dict[str, str], ...]
    related: tuple[str, ...]
    questions: tuple[str, ...]
    aliases: tuple[str, ...]
    reviewed_at: str
    version: int
    body: str
    path: Path
    content_hash: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def summary(self) -> str:
        return self.chunks()[0].text

    def links(self) -> list[str]:
        """Ids this article points to: ``related`` plus inline ``[..](kb:id)`` links."""
        return [*self.related, *_ARTICLE_LINK.findall(self.body)]

    def for_audience(self, audience: str) -> bool:
        return self.audience == "both" or self.audience == audience

    def chunks(self) -> list[Chunk]:
        return split_chunks(self.id, self.title, self.body)

    def question_chunks(self) -> list[Chunk]:
        """The article's "ask it like this" questions, indexed beside its sections."""
        return [Chunk(self.id, -(i + 1), "question", q) for i, q in enumerate(self.questions)]


def split_chunks(article_id: str, title: str, body: str) -> list[Chunk]:
    """Summary chunk (text before the first ``##``) then one chunk per ``##`` section."""
    lines = body.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    chunks: list[Chunk] = []
    heading = title
    buf: list[str] = []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            chunks.append(Chunk(article_id, len(chunks), heading, text))

    for line in lines:
        if line.startswith("## "):
            flush()
            heading, buf = line[3:].strip(), []
        else:
            buf.append(line)
    flush()
    if not chunks:
        chunks.append(Chunk(article_id, 0, title, title))
    return chunks


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)


def parse_article(path: Path) -> Article:
    raw = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(raw)
    if not match:
        raise ArticleError(f"{path.name}: missing YAML front matter between '---' lines")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ArticleError(f"{path.name}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ArticleError(f"{path.name}: front matter must be a mapping")
    missing = [f for f in REQUIRED_FIELDS if meta.get(f) in (None, "", [])]
    if missing:
        raise ArticleError(f"{path.name}: missing metadata: {', '.join(missing)}")
    sources = []
    for src in _as_tuple(meta["sources"]):
        sources.append({"title": str(src)} if isinstance(src, str) else {str(k): str(v) for k, v in src.items()})
    reviewed = meta["reviewed_at"]
    reviewed_at = reviewed.isoformat() if isinstance(reviewed, date) else str(reviewed)
    try:
        version = int(meta["version"])
    except (TypeError, ValueError) as exc:
        raise ArticleError(f"{path.name}: version must be an integer") from exc
    return Article(
        id=str(meta["id"]),
        title=str(meta["title"]),
        audience=str(meta["audience"]),
        age_band=tuple(str(a) for a in _as_tuple(meta["age_band"])),
        topics=tuple(str(t) for t in _as_tuple(meta["topics"])),
        sources=tuple(sources),
        related=tuple(str(r) for r in _as_tuple(meta.get("related"))),
        questions=tuple(str(q) for q in _as_tuple(meta.get("questions"))),
        aliases=tuple(str(a) for a in _as_tuple(meta.get("aliases"))),
        reviewed_at=reviewed_at,
        version=version,
        body=match.group(2),
        path=path,
        content_hash=hashlib.sha256(raw.encode()).hexdigest(),
        meta=meta,
    )


def article_paths(content_dir: Path = CONTENT_DIR) -> list[Path]:
    return sorted(p for p in content_dir.glob("*.md") if p.name.lower() != "readme.md")


def load_articles(content_dir: Path = CONTENT_DIR) -> list[Article]:
    """Parse every article; raises ``ArticleError`` on the first broken file."""
    return [parse_article(p) for p in article_paths(content_dir)]


def corpus_hash(articles: Iterable[Article]) -> str:
    digest = hashlib.sha256()
    for article in sorted(articles, key=lambda a: a.id):
        digest.update(article.id.encode())
        digest.update(article.content_hash.encode())
    return digest.hexdigest()
