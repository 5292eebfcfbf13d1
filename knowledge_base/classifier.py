"""Article classifier: a fifth retrieval signal, trained on the articles' own text.

The four ranking legs (BM25 and dense, over sections and over sample questions) are
nearest-neighbour signals: a query lands on the article whose text or sample question
looks most like it. Sibling articles (the child and the parent article on bullying, "a
friend wants to die" and "I want to hurt myself") share most of their words, so the
neighbour is often the sibling. A linear classifier trained on every article's title,
section headings and sample questions (labels: the article) learns instead which words
*separate* an article from the others, and its probabilities are added to the fused score
(``CLASSIFIER_WEIGHT`` in ``knowledge_base.index``).

Features: TF-IDF of word 1-2-grams and character 2-5-grams (``char_wb``) of the folded,
teen-code-expanded text (``NormalizedText.folded``), the same form the BM25 leg reads, so
text with and without diacritics look alike. Model: multinomial logistic regression
(lbfgs, deterministic). Trained when the index is loaded and cached next to it, keyed by
the corpus, the normaliser and ``FORMAT``; a few seconds for the bundled 123 articles.
No evaluation question is used for training.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from assistant.tfidf import SparseRow, tfidf_row, tfidf_transform
from knowledge_base.articles import Article, corpus_hash

log = logging.getLogger(__name__)

FORMAT = 2
C = 20.0
"""Inverse regularisation strength, chosen on the DEV questions with the weight (see
``CLASSIFIER_WEIGHT``); C 5 and 50 score within 0.01 of it."""


def training_texts(article: Article) -> list[str]:
    """What the classifier learns an article from: title, section headings, sample questions."""
    return [article.title, *(c.heading for c in article.chunks()[1:]), *article.questions]


class ArticleClassifier:
    """``probabilities(folded_query)`` over ``article_ids`` (one row, sums to 1)."""

    def __init__(self, article_ids: Sequence[str], key: str) -> None:
        self.article_ids = list(article_ids)
        self.key = key
        self._words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
        self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
        self._model = LogisticRegression(C=C, max_iter=2000)
        self._coef_t = np.zeros((0, 0))

    def _features(self, texts: Sequence[str], fit: bool = False) -> sparse.csr_matrix:
        if fit:
            return sparse.hstack([self._words.fit_transform(texts), self._chars.fit_transform(texts)]).tocsr()
        parts = [tfidf_transform(self._words, texts), tfidf_transform(self._chars, texts)]
        return sparse.hstack(parts, format="csr")

    @classmethod
    def train(
        cls, articles: Sequence[Article], fold: Callable[[str], str], key: str = ""
    ) -> ArticleClassifier:
        ordered = sorted(articles, key=lambda a: a.id)
        if len(ordered) < 2:
            raise ValueError("the article classifier needs at least two articles")
        clf = cls([a.id for a in ordered], key)
        texts: list[str] = []
        labels: list[int] = []
        for label, article in enumerate(ordered):
            for text in training_texts(article):
                texts.append(fold(text))
                labels.append(label)
        clf._model.fit(clf._features(texts, fit=True), labels)
        clf._coef_t = np.ascontiguousarray(clf._model.coef_.T)
        return clf

    def probabilities(self, folded_query: str) -> np.ndarray:
        """``predict_proba`` of the fitted model, without scikit-learn's per-call input
        checks (a softmax over one sparse-dense product; equality is tested)."""
        row = SparseRow.hstack([tfidf_row(self._words, folded_query), tfidf_row(self._chars, folded_query)])
        logits = row.dot(self._coef_t) + self._model.intercept_
        if logits.shape[0] == 1:  # two articles: scikit-learn fits one binary head
            logits = np.array([0.0, logits[0]])
        logits -= logits.max()
        proba: np.ndarray = np.exp(logits)
        proba /= proba.sum()
        return proba

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)


def classifier_key(articles: Sequence[Article], normalizer_version: str) -> str:
    return hashlib.sha256(f"{FORMAT}|{corpus_hash(articles)}|{normalizer_version}".encode()).hexdigest()[:16]


def load_or_train(
    directory: Path, articles: Sequence[Article], fold: Callable[[str], str], normalizer_version: str
) -> ArticleClassifier | None:
    """The cached classifier for these articles, or a new one (saved for the next start).
    ``None`` when there are fewer than two articles (nothing to tell apart)."""
    if len(articles) < 2:
        return None
    key = classifier_key(articles, normalizer_version)
    path = Path(directory) / f"article-classifier-{key}.pkl"
    if path.exists():
        try:
            clf = pickle.loads(path.read_bytes())  # noqa: S301 - written by this module, in our index dir
        except Exception as exc:  # noqa: BLE001 - a broken cache is retrained, never fatal
            log.warning("article classifier cache unusable, retraining: %s", exc)
        else:
            if isinstance(clf, ArticleClassifier) and clf.key == key:
                return clf
    started = time.perf_counter()
    clf = ArticleClassifier.train(articles, fold, key)
    try:
        clf.save(path)
        for stale in Path(directory).glob("article-classifier-*.pkl"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("article classifier not cached: %s", exc)
    log.info("article classifier trained", extra={"seconds": round(time.perf_counter() - started, 2)})
    return clf
