"""Fast TF-IDF transform of a few texts with a fitted scikit-learn vectorizer.

Used on every message by the risk model and the knowledge base's article classifier.
:func:`tfidf_row` does one text without building a sparse matrix at all, and
:class:`SparseRow` scores it against dense weight matrices: on one message the
sparse-matrix machinery (construction, format checks, ``hstack``) costs more than
the arithmetic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

__all__ = ["SparseRow", "tfidf_row", "tfidf_transform"]

_ANALYZERS: WeakKeyDictionary[TfidfVectorizer, Callable[[str], list[str]]] = WeakKeyDictionary()


def tfidf_transform(vec: TfidfVectorizer, texts: Sequence[str]) -> sparse.csr_matrix:
    """``vec.transform(texts)`` for one fitted vectorizer, the same numbers without
    scikit-learn's input validation, which checks whether the count matrix might be
    a dataframe and cost more than the vectorizing itself on one message (~0.5 ms
    per call; the risk stage calls it twice per message). Equality is tested."""
    if vec.norm not in ("l2", None):
        return sparse.csr_matrix(vec.transform(texts))
    x = sparse.csr_matrix(CountVectorizer.transform(vec, texts))
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if vec.sublinear_tf:
        np.log(x.data, x.data)
        x.data += 1.0
    if vec.use_idf:
        x.data *= vec.idf_[x.indices]
    if vec.norm == "l2":
        inplace_csr_row_normalize_l2(x)
    return x


@dataclass(frozen=True)
class SparseRow:
    """One row of a sparse matrix: column ``indices`` (sorted) and their ``values``."""

    indices: np.ndarray
    values: np.ndarray
    width: int

    @staticmethod
    def hstack(rows: Sequence[SparseRow]) -> SparseRow:
        """The rows side by side, as ``scipy.sparse.hstack`` places their columns."""
        offsets = np.cumsum([0, *(r.width for r in rows[:-1])])
        return SparseRow(
            np.concatenate([r.indices + off for r, off in zip(rows, offsets, strict=True)]),
            np.concatenate([r.values for r in rows]),
            int(sum(r.width for r in rows)),
        )

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """``row @ weights`` for a dense ``(width, k)`` matrix: a ``(k,)`` vector."""
        out: np.ndarray = self.values.astype(np.float64) @ weights[self.indices]
        return out

    def to_csr(self) -> sparse.csr_matrix:
        indptr = np.array([0, len(self.indices)], dtype=self.indices.dtype)
        return sparse.csr_matrix((self.values, self.indices, indptr), shape=(1, self.width))


def _analyzer(vec: TfidfVectorizer) -> Callable[[str], list[str]]:
    analyze = _ANALYZERS.get(vec)
    if analyze is None:  # racing threads build the same analyzer: harmless
        analyze = _ANALYZERS[vec] = vec.build_analyzer()
    return analyze


def _supported(vec: TfidfVectorizer) -> bool:
    return vec.norm in ("l2", None) and not vec.binary and vec.dtype in (np.float32, np.float64)


def tfidf_row(vec: TfidfVectorizer, text: str) -> SparseRow:
    """``vec.transform([text])`` as a :class:`SparseRow`: the same indices and values
    (equality is tested), counted with a ``Counter`` over the analyzer's n-grams."""
    width = len(vec.vocabulary_)
    if not _supported(vec):
        x = tfidf_transform(vec, [text])
        return SparseRow(x.indices.astype(np.int64), x.data, width)
    vocabulary = vec.vocabulary_
    counts: dict[int, int] = {}
    for feature, n in Counter(_analyzer(vec)(text)).items():
        j = vocabulary.get(feature)
        if j is not None:
            counts[j] = n
    indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    order = np.argsort(indices)
    indices = indices[order]
    values = np.fromiter(counts.values(), dtype=np.intc, count=len(counts))[order].astype(vec.dtype)
    if vec.sublinear_tf:
        np.log(values, values)
        values += 1.0
    if vec.use_idf:
        values *= vec.idf_[indices]
    if vec.norm == "l2" and len(values):
        # scikit-learn's own normaliser, so the numbers are its to the last bit.
        view: Any = SimpleNamespace(
            data=values, shape=(1, width), indices=indices.astype(np.int32), indptr=np.array([0, len(values)], np.int32)
        )
        inplace_csr_row_normalize_l2(view)
    return SparseRow(indices, values, width)
