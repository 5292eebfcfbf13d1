"""The baseline of ``python -m assistant bench chat``: a plain LangChain RAG service.

What a quick RAG prototype over the same knowledge base would be, served with the
same ``POST /api/v1/chat`` contract so the bench drives both the same way:

- the same Chroma collection and the same embedder (the configured one), queried with
  ``Chroma.similarity_search`` on the raw message (no accent restoration, no teen
  code expansion, no BM25, no fusion, no audience filter), over the article
  sections (the collection also holds our sample questions, which a plain
  pipeline would not have);
- the top chunk is the answer, citing its article;
- a keyword risk filter (``KeywordRiskClassifier``, no context, no model) that
  answers a disclosure with one fixed 111 text; nothing is stored, no report
  is opened.

Run: ``uvicorn evaluation.baseline_rag:create_app --factory`` with the service's
settings in the environment (``ASSISTANT_DATA_DIR`` ...); the bench does this.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from assistant.api import ChatRequest, ChatResponse, CitationOut, ReplyOut
from assistant.risk.keyword import KeywordRiskClassifier
from assistant.services import settings_embedder
from assistant.settings import Settings
from assistant.text import NormalizedText
from assistant.text.normalize import fold_accents
from knowledge_base.articles import Article, load_articles
from knowledge_base.index import KnowledgeIndex

DISCLOSURE_REPLY = (
    "Cảm ơn em đã kể. Chuyện này không phải lỗi của em. Em hãy gọi ngay Tổng đài 111 "
    "(miễn phí, 24/7) để được giúp đỡ."
)


def plain_text(text: str) -> NormalizedText:
    """The message as typed; only folded (no restoration, no teen code) for the keyword filter."""
    return NormalizedText(
        original=text, clean=text, expanded=text, restored=text, folded=fold_accents(text).lower(),
        style="diacritics",
    )


class BaselineRag:
    """Keyword filter, then ``similarity_search`` top-1 over the article sections."""

    def __init__(self, settings: Settings) -> None:
        embedder = settings_embedder(settings)
        # Only the index's Chroma store is used (no BM25, no normalizer, no in-memory vectors).
        self.store = KnowledgeIndex(
            settings.index_dir, embedder, settings.knowledge_base_dir, settings.retrieval.chroma_url
        ).store
        self.articles: dict[str, Article] = {a.id: a for a in load_articles(settings.knowledge_base_dir)}
        self.classifier = KeywordRiskClassifier()
        self.store.similarity_search("xin chào", k=1)  # load the model now, not on the first request

    def answer(self, text: str) -> ReplyOut:
        if self.classifier.assess(plain_text(text)).escalate:
            return ReplyOut(text=DISCLOSURE_REPLY, citations=[], suggestions=[])
        sections: Any = {"is_question": False}  # Chroma metadata filter
        docs = self.store.similarity_search(text, k=1, filter=sections)
        if not docs:
            return ReplyOut(text="Mình chưa tìm được câu trả lời. Em có thể gọi 111.", citations=[], suggestions=[])
        doc = docs[0]
        article = self.articles.get(str(doc.metadata.get("article_id")))
        citations = [CitationOut(id=article.id, title=article.title, url=f"/kb/{article.id}")] if article else []
        return ReplyOut(text=doc.page_content, citations=citations, suggestions=[])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    rag = BaselineRag(settings)
    app = FastAPI(title="Baseline: plain LangChain RAG", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/api/v1/chat", response_model=ChatResponse)
    def chat(body: ChatRequest) -> ChatResponse:
        return ChatResponse(conversation_id=body.conversation_id or uuid.uuid4().hex, reply=rag.answer(body.text))

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
