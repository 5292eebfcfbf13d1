"""Responders: turn a message, its risk and retrieved articles into a reply.

``GroundedResponder`` (the default, no LLM) composes the reply only from the
best article's own sentences: short for children (<= 80 words, summary plus
1-3 numbered steps), fuller for parents. When nothing is relevant enough it
says so and offers 111 instead of answering off-topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from assistant.intents import detect_intent
from assistant.prompts import PromptBook
from assistant.risk.base import RiskAssessment
from assistant.text import NormalizedText
from knowledge_base.articles import Article
from knowledge_base.index import Hit, KnowledgeIndex

CHILD_MAX_WORDS = 80
PARENT_MAX_WORDS = 170
_STEP = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")


@dataclass(frozen=True)
class Citation:
    id: str
    title: str
    url: str


@dataclass
class Reply:
    text: str
    kind: str
    citations: list[Citation] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


@dataclass
class Relevance:
    """Calibrated thresholds: a hit is answerable when either leg is confident."""

    min_bm25: float = 9.0
    min_dense: float = 0.89


class Responder(Protocol):
    def respond(
        self,
        message: NormalizedText,
        audience: str,
        assessment: RiskAssessment,
        seed: str,
    ) -> Reply: ...


def _words(text: str) -> int:
    return len(text.split())


def _plain(line: str) -> str:
    """Strip Markdown emphasis and links from one line."""
    line = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line)
    return line.replace("**", "").replace("__", "").strip()


def compose_answer(article: Article, hit_chunk_text: str, audience: str) -> str:
    """The article's summary plus the numbered steps of the matched section (or the first one)."""
    budget = CHILD_MAX_WORDS if audience == "child" else PARENT_MAX_WORDS
    max_steps = 3 if audience == "child" else 5
    summary = " ".join(_plain(x) for x in article.summary.splitlines() if x.strip())
    sentences = re.split(r"(?<=[.!?])\s+", summary)
    parts: list[str] = []
    used = 0
    for sentence in sentences[: 2 if audience == "child" else 3]:
        if used + _words(sentence) > budget and parts:
            break
        parts.append(sentence)
        used += _words(sentence)
    steps = _steps(hit_chunk_text)
    if not steps:
        for chunk in article.chunks():
            steps = _steps(chunk.text)
            if steps:
                break
    lines = [" ".join(parts)]
    for i, step in enumerate(steps[:max_steps], start=1):
        if used + _words(step) > budget and i > 1:
            break
        lines.append(f"{i}. {step}")
        used += _words(step)
    return "\n".join(lines)


def _steps(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        match = _STEP.match(line)
        if match:
            out.append(_plain(match.group(2)))
    return out


class GroundedResponder:
    """Replies from reviewed content and the prompts file only."""

    def __init__(self, index: KnowledgeIndex, prompts: PromptBook, relevance: Relevance | None = None) -> None:
        self.index = index
        self.prompts = prompts
        self.relevance = relevance or Relevance()

    def is_relevant(self, hit: Hit) -> bool:
        return hit.raw.get("bm25", 0.0) >= self.relevance.min_bm25 or hit.raw.get(
            "dense", 0.0
        ) >= self.relevance.min_dense

    def retrieve(self, message: NormalizedText, audience: str, k: int = 3) -> list[Hit]:
        return self.index.search(
            message.folded, message.restored, audience=audience, k=k, relevant_bm25=self.relevance.min_bm25
        )

    def respond(
        self,
        message: NormalizedText,
        audience: str,
        assessment: RiskAssessment,
        seed: str,
    ) -> Reply:
        if assessment.escalate and not assessment.carried:
            return self._disclosure(assessment, audience, seed)
        if assessment.escalate:
            return self._follow_up(message, audience, seed)
        intent = detect_intent(message.folded)
        if intent is not None:
            return Reply(
                self.prompts.text(intent, audience, seed),
                kind=intent,
                suggestions=self.prompts.suggestions(audience)[:3],
            )
        hits = self.retrieve(message, audience)
        relevant = [h for h in hits if self.is_relevant(h)]
        if not relevant:
            return Reply(
                self.prompts.text("no_answer", audience, seed),
                kind="no_answer",
                suggestions=self.prompts.suggestions(audience)[:3],
            )
        best = relevant[0]
        text = compose_answer(best.article, best.chunk.text, audience)
        if assessment.severity == 2:
            text = "\n".join(
                [
                    self.prompts.text("support_prefix", audience, seed),
                    text,
                    self.prompts.text("support_suffix", audience, seed),
                ]
            )
        return Reply(
            text,
            kind="answer",
            citations=[_citation(best.article)],
            suggestions=self._suggestions(best.article, audience),
        )

    def _follow_up(self, message: NormalizedText, audience: str, seed: str) -> Reply:
        """After a disclosure: stay with the user, and still answer a real question."""
        text = self.prompts.text("disclosure_followup", audience, seed)
        if detect_intent(message.folded) is None:
            relevant = [h for h in self.retrieve(message, audience) if self.is_relevant(h)]
            if relevant:
                best = relevant[0]
                return Reply(
                    "\n".join([text, compose_answer(best.article, best.chunk.text, audience)]),
                    kind="disclosure_followup",
                    citations=[_citation(best.article)],
                    suggestions=self.prompts.suggestions("disclosure"),
                )
        return Reply(text, kind="disclosure_followup", suggestions=self.prompts.suggestions("disclosure"))

    def _disclosure(self, assessment: RiskAssessment, audience: str, seed: str) -> Reply:
        imminent = assessment.severity >= 4
        if assessment.primary == "self_harm":
            key = "disclosure_self_harm_imminent" if imminent else "disclosure_self_harm"
        else:
            key = "disclosure_imminent" if imminent else "disclosure"
        return Reply(
            self.prompts.text(key, audience, seed),
            kind="disclosure",
            suggestions=self.prompts.suggestions("disclosure"),
        )

    def _suggestions(self, article: Article, audience: str) -> list[str]:
        out: list[str] = []
        for rid in article.related:
            related = self.index.articles.get(rid)
            if related is not None and related.for_audience(audience):
                out.append(related.title)
            if len(out) == 3:
                break
        for default in self.prompts.suggestions(audience):
            if len(out) >= 2:
                break
            if default not in out:
                out.append(default)
        return out


def _citation(article: Article) -> Citation:
    return Citation(id=article.id, title=article.title, url=f"/kb/{article.id}")


def citations_for(articles: Sequence[Article]) -> list[Citation]:
    return [_citation(a) for a in articles]
