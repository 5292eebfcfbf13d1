"""Fast TF-IDF transform of a few texts with a fitted scikit-learn vectorizer.

Used on every message by the risk model and the knowledge base's article classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

__all__ = ["tfidf_transform"]


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
