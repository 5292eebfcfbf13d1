"""Embedding from several request threads at once (shared by the embedder tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np


def embed_from_threads(
    embed_queries: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], threads: int = 4
) -> list[np.ndarray | None]:
    """Each text's query vector, the texts shared out over ``threads`` threads that
    start together and embed one text per call."""
    got: list[np.ndarray | None] = [None] * len(texts)
    start = threading.Barrier(threads)

    def work(offset: int) -> None:
        start.wait()
        for i in range(offset, len(texts), threads):
            got[i] = embed_queries([texts[i]])[0]

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return got
