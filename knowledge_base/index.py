"""Hybrid retrieval over the curated articles: BM25 on folded syllables + dense vectors in Chroma.

Measured on Vietnamese questions, the dense model is strong on text with
diacritics and collapses without them, while accent-folded BM25 holds on both.
So the query is expanded (teen code), the dense leg gets the accent-restored
text, the BM25 leg the folded text, and the two rankings are fused with
reciprocal rank fusion. An article classifier trained on the articles' own titles,
headings and sample questions (``knowledge_base.classifier``) adds its probability to
the fused score, so the words that separate sibling articles count. Audience and age
band filter both legs.

Serving keeps everything a query touches in memory: the BM25 index, the chunk
vectors (read once from Chroma, searched exactly with one matrix product, so no
vector-store round trip per message) and an LRU cache of query embeddings keyed
by the accent-restored text in lower case (``query_cache_key``). The embedding is the
costliest step of a message, so it is skipped when BM25 alone is decisive (``DENSE_SKIP``).

    KnowledgeBaseError
     ├── IndexNotReady      the index was never built or is stale
     └── ArticleError       (from ``articles``) a broken article file
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from filelock import FileLock
from langchain_chroma import Chroma

from assistant.text import NormalizedText
from assistant.text.normalize import fold_accents
from knowledge_base.articles import Article, Chunk, corpus_hash, load_articles
from knowledge_base.classifier import ArticleClassifier
from knowledge_base.classifier import load_or_train as load_or_train_classifier
from knowledge_base.embedders import Embedder, LangChainEmbedder

log = logging.getLogger(__name__)

COLLECTION = "kb_chunks"
MANIFEST = "manifest.json"
INDEX_FORMAT = 3
LEG_WEIGHTS = {"bm25_section": 0.5, "bm25_question": 1.0, "dense_section": 1.0, "dense_question": 1.0}
"""RRF weights of the four legs, chosen on the DEV questions only (evaluation/retrieval.py)."""
CLASSIFIER_WEIGHT = 0.3
"""Weight of the article classifier's probability (``knowledge_base.classifier``) added to
the fused score of every article the four legs found. Chosen on the DEV questions: dev R@1
0.918 without it, 0.937 at 0.3, 0.929-0.934 at 0.2-0.4 and C 5-50 (0.934 at 0.3 once five
sample questions that copied evaluation questions were removed)."""

PLATFORMS: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {
    # platform: (article ``topics`` naming it, pattern on the folded, teen-code-expanded query)
    "facebook": (frozenset({"facebook", "messenger"}), re.compile(r"\b(?:facebook|face book|messenger)\b")),
    "zalo": (frozenset({"zalo"}), re.compile(r"\bzalo\b")),
    "tiktok": (frozenset({"tiktok"}), re.compile(r"\b(?:tiktok|tik tok)\b")),
    "youtube": (frozenset({"youtube", "youtube_kids"}), re.compile(r"\byoutube\b")),
    "instagram": (frozenset({"instagram"}), re.compile(r"\binstagram\b")),
    "discord": (frozenset({"discord"}), re.compile(r"\bdiscord\b")),
    "roblox": (frozenset({"roblox"}), re.compile(r"\broblox\b")),
    "moba": (frozenset({"free_fire", "lien_quan"}), re.compile(r"\b(?:free ?fire|lien quan)\b")),
    "apple": (frozenset({"apple", "ios"}), re.compile(r"\b(?:iphone|ipad|ios|apple)\b")),
    "android": (frozenset({"android", "family_link"}), re.compile(r"\b(?:android|family link)\b")),
}
"""Apps and devices that some articles are specific to (by their ``topics``)."""
NEAR_DUPLICATE = (0.96, 0.2)
"""(cosine, bonus): a query whose embedding is this close to one of an article's sample
questions is nearly that question; the article's fused score gains up to ``bonus`` (linear
from the cosine to 1.0), so two or three section legs ranking a neighbour first cannot bury
it. Chosen on DEV questions (no dev question lost) and checked on leave-one-out over the
sample questions (unchanged)."""
DENSE_SKIP = (10.0, 0.25, 0.15)
"""(min_score, question_margin, section_margin): the dense legs (the query embedding, most of
a message's retrieval time) are skipped when BM25 is decisive: both BM25 legs rank the same
article first, its best sample-question score is at least ``min_score`` and leads the next
article's by ``question_margin`` of itself, and its best section score leads the next by
``section_margin``. Set on the DEV questions (evaluation/retrieval.py): 29% of them skip the
embedding and dev R@1 and R@5 are unchanged in every writing style; neighbouring settings
(margins 0.2-0.3 and 0.1-0.2) are unchanged too, while a section margin of 0 loses a dev
question. A skipped query has no dense score, so ``search`` also asks the best BM25 score to
clear the caller's no-answer threshold (``relevant_bm25``, the responder's ``min_bm25``):
``min_score`` is above the default one (9), and a deployment that raises it above 10 gets
fewer skips rather than answers rejected for lacking a dense score."""
CLASSIFIER_SKIP = 0.5
"""The dense legs are also skipped when both BM25 legs rank the same article first, its
sample-question score reaches ``DENSE_SKIP``'s ``min_score`` (and the no-answer threshold)
and the article classifier gives it at least this probability (so it is the classifier's
first article too). Set on the DEV questions: 44% of them skip the embedding instead of
29%, and dev R@1 is unchanged; every value from 0.3 (48%) to 0.8 (38%) loses no dev
question either."""
PLATFORM_MISMATCH = 0.5
"""Fused-score factor for an article specific to other platforms than the ones the query
names (an Instagram question is not answered by the Facebook settings article). Chosen on
DEV questions and on leave-one-out over the articles' own sample questions."""


class KnowledgeBaseError(RuntimeError):
    pass


class IndexNotReady(KnowledgeBaseError):
    pass


def bm25_tokens(text: str) -> list[str]:
    """Accent-folded, lower-cased syllables plus adjacent-syllable bigrams."""
    folded = fold_accents(text).lower()
    sylls = [s for s in "".join(c if c.isalnum() else " " for c in folded).split() if s]
    return sylls + [f"{a}_{b}" for a, b in zip(sylls, sylls[1:], strict=False)]


_CLOSING_PUNCTUATION = " \t\n.?!…,;:"


def query_cache_key(text: str) -> str:
    """The form of a dense query that the embedding cache keys on and embeds: lower case,
    one space between words, no closing punctuation ("Làm sao chặn?" = "làm sao  chặn")."""
    return " ".join(text.lower().split()).rstrip(_CLOSING_PUNCTUATION)


def bm25_decisive(
    section: Sequence[Hit],
    question: Sequence[Hit],
    relevant_bm25: float = 0.0,
    classifier_probability: Callable[[str], float] | None = None,
) -> bool:
    """Whether the BM25 legs alone settle the first answer (``DENSE_SKIP``); the best
    sample-question score must also reach ``relevant_bm25`` (the no-answer threshold).
    With ``classifier_probability`` (article id -> the article classifier's probability),
    the legs also settle it when they agree and the classifier gives their article at
    least ``CLASSIFIER_SKIP``, whatever the margins."""
    if not section or not question or section[0].article.id != question[0].article.id:
        return False
    min_score, question_margin, section_margin = DENSE_SKIP
    min_score = max(min_score, relevant_bm25)
    if question[0].raw["bm25"] < min_score:
        return False
    if classifier_probability is not None and classifier_probability(section[0].article.id) >= CLASSIFIER_SKIP:
        return True

    def lead(hits: Sequence[Hit]) -> float:
        first = hits[0].raw["bm25"]
        second = hits[1].raw["bm25"] if len(hits) > 1 else 0.0
        return (first - second) / first if first > 0 else 0.0

    return lead(question) >= question_margin and lead(section) >= section_margin


def article_platforms(article: Article) -> frozenset[str]:
    """The platforms an article is specific to (empty for a general article)."""
    topics = set(article.topics)
    return frozenset(name for name, (tags, _) in PLATFORMS.items() if tags & topics)


def query_platforms(folded_query: str) -> frozenset[str]:
    """The platforms a folded, lower-cased query names."""
    return frozenset(name for name, (_, pattern) in PLATFORMS.items() if pattern.search(folded_query))


def chunk_document(article: Article, chunk: Chunk) -> str:
    """The text embedded and indexed for one chunk: title, heading, body (a question as typed)."""
    if chunk.is_question:
        return chunk.text
    parts = [article.title]
    if chunk.heading != article.title:
        parts.append(chunk.heading)
    parts.append(chunk.text)
    return "\n".join(parts)


def chunk_metadata(article: Article, chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "article_id": article.id,
        "order": chunk.order,
        "is_question": chunk.is_question,
        "aud_child": article.for_audience("child"),
        "aud_parent": article.for_audience("parent"),
    }
    for band in ("8-11", "12-15", "16-17"):
        meta["age_" + band.replace("-", "_")] = band in article.age_band
    return meta


def chroma_filter(audience: str | None, age_band: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if audience in ("child", "parent"):
        clauses.append({f"aud_{audience}": True})
    if age_band:
        clauses.append({"age_" + age_band.replace("-", "_"): True})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass
class IngestReport:
    articles: int
    chunks: int
    added: int
    removed: int
    unchanged: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Hit:
    article: Article
    score: float
    chunk: Chunk
    ranks: dict[str, int] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)


class KnowledgeIndex:
    """The articles, their BM25 index (in memory) and their vectors (Chroma)."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        content_dir: Path,
        chroma_url: str | None = None,
        rrf_k: int = 5,
        normalizer: Callable[[str], NormalizedText] | None = None,
        normalizer_version: str = "none",
        query_cache_size: int = 4096,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.content_dir = Path(content_dir)
        self.embedder = embedder
        self.chroma_url = chroma_url
        self.rrf_k = rrf_k
        # Sample questions are written the way users type (no diacritics, teen code):
        # they get the same normalisation as users' messages.
        self.normalizer = normalizer
        self.normalizer_version = normalizer_version
        self._client: Any = None
        self._store: Chroma | None = None
        self.articles: dict[str, Article] = {}
        self._chunks: list[tuple[Article, Chunk]] = []
        self._bm25: bm25s.BM25 | None = None
        self._aud_mask: dict[str, np.ndarray] = {}
        self._age_mask: dict[str, np.ndarray] = {}
        self._is_question = np.zeros(0, dtype=bool)
        self._first_section: dict[str, Chunk] = {}
        self._platforms: dict[str, frozenset[str]] = {}
        self._classifier: ArticleClassifier | None = None
        self._classifier_row: dict[str, int] = {}
        # Unit-length chunk vectors aligned with ``_chunks`` (rows missing from the store masked out).
        self._vectors = np.zeros((0, embedder.dim), dtype=np.float32)
        self._has_vector = np.zeros(0, dtype=bool)
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_size = query_cache_size
        self._query_cache_lock = threading.Lock()
        self.query_cache_hits = 0
        self.query_cache_misses = 0
        self.dense_skips = 0

    # -- storage -----------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.index_dir / MANIFEST

    def _chroma_client(self) -> Any:
        if self._client is None:
            if self.chroma_url:
                from urllib.parse import urlparse

                url = urlparse(self.chroma_url)
                self._client = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or 8000,
                    ssl=url.scheme == "https",
                    settings=ChromaSettings(anonymized_telemetry=False),
                )
            else:
                self.index_dir.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(
                    path=str(self.index_dir / "chroma"),
                    settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
                )
        return self._client

    def _collection_name(self) -> str:
        return COLLECTION

    @property
    def store(self) -> Chroma:
        if self._store is None:
            self._store = Chroma(
                collection_name=self._collection_name(),
                embedding_function=LangChainEmbedder(self.embedder),
                client=self._chroma_client(),
                collection_metadata={"hnsw:space": "cosine"},
            )
        return self._store

    def _read_manifest(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.manifest_path.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    # -- ingestion ---------------------------------------------------------
    def is_stale(self, articles: Sequence[Article] | None = None) -> bool:
        articles = list(articles) if articles is not None else load_articles(self.content_dir)
        manifest = self._read_manifest()
        return (
            manifest.get("format") != INDEX_FORMAT
            or manifest.get("embedder") != self.embedder.name
            or manifest.get("normalizer") != self.normalizer_version
            or manifest.get("corpus_hash") != corpus_hash(articles)
        )

    def ingest(self, force: bool = False) -> IngestReport:
        """Index new/changed articles, drop removed ones; unchanged ones are left alone."""
        started = time.perf_counter()
        articles = load_articles(self.content_dir)
        manifest = self._read_manifest()
        previous: dict[str, str] = manifest.get("articles", {})
        if (
            force
            or manifest.get("embedder") != self.embedder.name
            or manifest.get("format") != INDEX_FORMAT
            or manifest.get("normalizer") != self.normalizer_version
        ):
            self._reset_collection()
            previous = {}
        current = {a.id: a.content_hash for a in articles}
        changed = [a for a in articles if previous.get(a.id) != a.content_hash]
        removed = [aid for aid in previous if aid not in current or aid in {a.id for a in changed}]
        collection = self.store._collection
        removed_chunks = 0
        for aid in removed:
            existing = collection.get(where={"article_id": aid}, include=[])
            if existing["ids"]:
                collection.delete(ids=existing["ids"])
                removed_chunks += len(existing["ids"])
        added = 0
        if changed:
            ids, docs, metas, kinds = [], [], [], []
            for article in changed:
                for chunk in self._entries_of(article):
                    ids.append(chunk.chunk_id)
                    docs.append(chunk_document(article, chunk))
                    metas.append(chunk_metadata(article, chunk))
                    kinds.append(chunk.is_question)
            vectors = np.zeros((len(docs), self.embedder.dim), dtype=np.float32)
            sections = [i for i, q in enumerate(kinds) if not q]
            questions = [i for i, q in enumerate(kinds) if q]
            # Sections are passages; sample questions are embedded like the user's query.
            if sections:
                vectors[sections] = self.embedder.embed_passages([docs[i] for i in sections])
            if questions:
                vectors[questions] = self.embedder.embed_queries([self._dense_text(docs[i]) for i in questions])
            for start in range(0, len(ids), 256):
                end = start + 256
                collection.upsert(
                    ids=ids[start:end],
                    documents=docs[start:end],
                    metadatas=metas[start:end],  # type: ignore[arg-type]
                    embeddings=vectors[start:end],
                )
            added = len(ids)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path.write_text(
            json.dumps(
                {
                    "format": INDEX_FORMAT,
                    "embedder": self.embedder.name,
                    "normalizer": self.normalizer_version,
                    "corpus_hash": corpus_hash(articles),
                    "articles": current,
                },
                indent=1,
            )
        )
        self._load_memory(articles)
        total_chunks = len(self._chunks)
        return IngestReport(
            articles=len(articles),
            chunks=total_chunks,
            added=added,
            removed=removed_chunks,
            unchanged=total_chunks - added,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _reset_collection(self) -> None:
        client = self._chroma_client()
        try:
            client.delete_collection(self._collection_name())
        except Exception as exc:  # noqa: BLE001 - chroma raises different types per version
            log.debug("no collection to delete: %s", exc)
        self._store = None

    def load(self) -> None:
        """Load for serving; raises ``IndexNotReady`` if the index is missing or stale."""
        articles = load_articles(self.content_dir)
        if self.is_stale(articles):
            raise IndexNotReady(
                "knowledge-base index is missing or stale: run `python -m assistant ingest`"
            )
        self._load_memory(articles)

    def ensure(self) -> IngestReport | None:
        """Ingest if missing or stale, else load. Returns the ingest report if it ran.

        A file lock in the index directory serialises this across processes:
        several server workers (or test runs) starting on one data directory
        would otherwise ingest at once and delete each other's collection.
        """
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.index_dir / ".ingest.lock")):
            articles = load_articles(self.content_dir)
            if self.is_stale(articles):
                return self.ingest()
            self._load_memory(articles)
            return None

    def _dense_text(self, question: str) -> str:
        return self.normalizer(question).restored if self.normalizer else question

    def _folded_text(self, question: str) -> str:
        return self.normalizer(question).folded if self.normalizer else question

    @staticmethod
    def _entries_of(article: Article) -> list[Chunk]:
        return [*article.chunks(), *article.question_chunks()]

    def _load_memory(self, articles: Sequence[Article]) -> None:
        self.articles = {a.id: a for a in articles}
        self._chunks = [(a, c) for a in articles for c in self._entries_of(a)]
        corpus = [
            bm25_tokens(self._folded_text(c.text) if c.is_question else chunk_document(a, c))
            for a, c in self._chunks
        ]
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        self._bm25 = bm25
        self._aud_mask = {
            aud: np.array([a.for_audience(aud) for a, _ in self._chunks]) for aud in ("child", "parent")
        }
        self._is_question = np.array([c.is_question for _, c in self._chunks], dtype=bool)
        self._age_mask = {
            band: np.array([band in a.age_band for a, _ in self._chunks]) for band in ("8-11", "12-15", "16-17")
        }
        self._first_section = {a.id: a.chunks()[0] for a in articles}
        self._platforms = {a.id: article_platforms(a) for a in articles}
        self._classifier = load_or_train_classifier(
            self.index_dir, articles, self._folded_text, self.normalizer_version
        )
        self._classifier_row = (
            {aid: i for i, aid in enumerate(self._classifier.article_ids)} if self._classifier else {}
        )
        self._load_vectors()
        with self._query_cache_lock:
            self._query_cache.clear()

    def _load_vectors(self) -> None:
        """Read every chunk vector from the store once (this also opens it before the first request)."""
        got = self.store._collection.get(include=["embeddings"])
        embeddings = got.get("embeddings")
        position = {cid: i for i, cid in enumerate(got["ids"])}
        vectors = np.zeros((len(self._chunks), self.embedder.dim), dtype=np.float32)
        has_vector = np.zeros(len(self._chunks), dtype=bool)
        if embeddings is not None and len(embeddings):
            stored = np.asarray(embeddings, dtype=np.float32)
            for row, (_, chunk) in enumerate(self._chunks):
                j = position.get(chunk.chunk_id)
                if j is not None:
                    vectors[row] = stored[j]
                    has_vector[row] = True
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        self._has_vector = has_vector & (norms[:, 0] > 0)
        if not self._has_vector.all():
            log.warning("chunks without a vector in the store", extra={"missing": int((~self._has_vector).sum())})

    def resolve(self, article_id: str) -> Article | None:
        """An article by id, or by the id of an article merged into it (``aliases``)."""
        if article_id in self.articles:
            return self.articles[article_id]
        return next((a for a in self.articles.values() if article_id in a.aliases), None)

    @property
    def ready(self) -> bool:
        return self._bm25 is not None

    # -- search ------------------------------------------------------------
    def embed_query(self, text: str) -> np.ndarray:
        """The query embedding of ``text``, from an LRU cache (many users ask the same things).

        The cache key is ``query_cache_key(text)`` and the embedded text is that key, so
        messages that differ only in case, spacing or closing punctuation share one entry
        and get the same vector whichever of them came first."""
        key = query_cache_key(text)
        with self._query_cache_lock:
            cached = self._query_cache.get(key)
            if cached is not None:
                self._query_cache.move_to_end(key)
                self.query_cache_hits += 1
                return cached
        vector = np.asarray(self.embedder.embed_queries([key])[0], dtype=np.float32)
        vector.setflags(write=False)
        with self._query_cache_lock:
            self.query_cache_misses += 1
            self._query_cache[key] = vector
            if len(self._query_cache) > self._query_cache_size:
                self._query_cache.popitem(last=False)
        return vector

    def _mask(self, audience: str | None, age_band: str | None) -> np.ndarray:
        mask = np.ones(len(self._chunks), dtype=bool)
        if audience in self._aud_mask:
            mask &= self._aud_mask[audience]
        if age_band in self._age_mask:
            mask &= self._age_mask[age_band]
        return mask

    def search_bm25(
        self,
        query: str,
        audience: str | None = None,
        age_band: str | None = None,
        k: int = 10,
        kind: str | None = None,
    ) -> list[Hit]:
        """BM25 over folded syllables; ``kind`` keeps only sections or only sample questions."""
        if self._bm25 is None:
            raise IndexNotReady("knowledge-base index is not loaded")
        tokens = bm25_tokens(query)
        if not tokens:
            return []
        scores = self._bm25.get_scores(tokens)
        mask = self._mask(audience, age_band)
        if kind is not None:
            mask = mask & (self._is_question == (kind == "question"))
        scores = np.where(mask, scores, 0.0)
        return self._best_per_article(scores, k, "bm25")

    def search_dense(
        self,
        query: str | np.ndarray,
        audience: str | None = None,
        age_band: str | None = None,
        k: int = 10,
        kind: str | None = None,
    ) -> list[Hit]:
        """Nearest chunks by cosine similarity (the query text, or its vector): an exact
        search over the chunk vectors held in memory, filtered like ``chroma_filter``."""
        if not self.ready:
            raise IndexNotReady("knowledge-base index is not loaded")
        vector = self.embed_query(query) if isinstance(query, str) else np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        mask = self._mask(audience, age_band) & self._has_vector
        if kind is not None:
            mask &= self._is_question == (kind == "question")
        if norm == 0 or not mask.any():
            return []
        similarities = np.where(mask, self._vectors @ (vector / norm), -np.inf)
        hits: list[Hit] = []
        seen: set[str] = set()
        for idx in np.argsort(-similarities, kind="stable"):
            similarity = float(similarities[idx])
            if similarity == -np.inf:
                break
            article, chunk = self._chunks[int(idx)]
            if article.id in seen:
                continue
            seen.add(article.id)
            if chunk.is_question:
                chunk = self._first_section[article.id]
            hits.append(Hit(article, similarity, chunk, {"dense": len(hits) + 1}, {"dense": similarity}))
            if len(hits) >= k:
                break
        return hits

    def _best_per_article(self, scores: np.ndarray, k: int, leg: str) -> list[Hit]:
        order = np.argsort(-scores, kind="stable")
        hits: list[Hit] = []
        seen: set[str] = set()
        for idx in order:
            score = float(scores[idx])
            if score <= 0:
                break
            article, chunk = self._chunks[int(idx)]
            if article.id in seen:
                continue
            if chunk.is_question:
                chunk = self._first_section[article.id]
            seen.add(article.id)
            hits.append(Hit(article, score, chunk, {leg: len(hits) + 1}, {leg: score}))
            if len(hits) >= k:
                break
        return hits

    def search(
        self,
        folded_query: str,
        dense_query: str,
        audience: str | None = None,
        age_band: str | None = None,
        k: int = 5,
        depth: int = 20,
        skip_dense: bool = True,
        relevant_bm25: float = 0.0,
    ) -> list[Hit]:
        """Hybrid: four legs (BM25 and dense, over sections and over sample questions),
        fused by weighted reciprocal rank fusion, plus the article classifier's probability
        (``CLASSIFIER_WEIGHT``) for each article they found; an article with a sample question nearly
        identical to the query gains a bonus (``NEAR_DUPLICATE``) and articles specific to
        another platform than the one the query names are scored down
        (``PLATFORM_MISMATCH``). ``raw`` keeps each article's best BM25 score and best
        cosine similarity for the no-answer threshold. With ``skip_dense``, the dense legs
        are left out when BM25 is decisive (``DENSE_SKIP``) and its best score reaches
        ``relevant_bm25``, the caller's no-answer threshold; ``dense_skips`` counts those."""
        legs = {
            "bm25_section": self.search_bm25(folded_query, audience, age_band, depth, "section"),
            "bm25_question": self.search_bm25(folded_query, audience, age_band, depth, "question"),
        }
        proba = self._classifier.probabilities(folded_query) if self._classifier is not None else None

        def classifier_probability(article_id: str) -> float:
            row = self._classifier_row.get(article_id)
            return float(proba[row]) if proba is not None and row is not None else 0.0

        if skip_dense and bm25_decisive(
            legs["bm25_section"], legs["bm25_question"], relevant_bm25,
            classifier_probability if proba is not None else None,
        ):
            with self._query_cache_lock:
                self.dense_skips += 1
            legs["dense_section"] = legs["dense_question"] = []
        else:
            vector = self.embed_query(dense_query)
            legs["dense_section"] = self.search_dense(vector, audience, age_band, depth, "section")
            legs["dense_question"] = self.search_dense(vector, audience, age_band, depth, "question")
        fused: dict[str, Hit] = {}
        for leg, hits in legs.items():
            kind = leg.split("_", 1)[0]
            for rank, hit in enumerate(hits, start=1):
                entry = fused.get(hit.article.id)
                if entry is None:
                    entry = fused[hit.article.id] = Hit(hit.article, 0.0, hit.chunk)
                elif leg == "bm25_section":
                    entry.chunk = hit.chunk
                entry.score += LEG_WEIGHTS[leg] / (self.rrf_k + rank)
                entry.ranks[leg] = rank
                entry.raw[kind] = max(entry.raw.get(kind, 0.0), hit.raw[kind])
        if proba is not None:
            for entry in fused.values():
                if entry.article.id in self._classifier_row:
                    entry.raw["classifier"] = classifier_probability(entry.article.id)
                    entry.score += CLASSIFIER_WEIGHT * entry.raw["classifier"]
        near, bonus = NEAR_DUPLICATE
        for hit in legs["dense_question"]:
            closeness = (hit.raw["dense"] - near) / (1.0 - near)
            if closeness > 0:
                fused[hit.article.id].score += bonus * min(1.0, closeness)
        named = query_platforms(folded_query)
        if named:
            for entry in fused.values():
                specific = self._platforms.get(entry.article.id, frozenset())
                if specific and not specific & named:
                    entry.score *= PLATFORM_MISMATCH
        ranked = sorted(fused.values(), key=lambda h: (-h.score, h.article.id))
        return ranked[:k]
