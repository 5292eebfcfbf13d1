"""The serving process keeps its start-up heap out of the garbage collector's walks
and reports every collection's pause."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from assistant.metrics import Metrics
from assistant.services import settle_heap


def _pauses(metrics: Metrics, generation: str) -> float:
    value = metrics.registry.get_sample_value("assistant_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_every_collection_is_timed_until_stopped() -> None:
    metrics = Metrics()
    stop = metrics.watch_gc()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        stop()
    assert _pauses(metrics, "2") >= 1 and _pauses(metrics, "0") >= 1
    seen = _pauses(metrics, "2")
    gc.collect(2)
    assert _pauses(metrics, "2") == seen  # stopped: the callback is gone
    stop()  # stopping twice is harmless


def test_settle_heap_freezes_what_is_loaded() -> None:
    loaded = [[i] for i in range(50_000)]  # stands in for the models' objects (tracked by gc)
    assert gc.is_tracked(loaded[0]) and any(o is loaded[0] for o in gc.get_objects())
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() >= len(loaded)
        # Collections walk the objects of generations 0-2; frozen ones are in none.
        assert not any(o is loaded[0] for o in gc.get_objects())
        assert loaded[123] == [123]  # frozen objects stay usable
        after = [[1]]
        assert any(o is after[0] for o in gc.get_objects())  # later objects are collected as usual
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


@pytest.mark.integration
def test_a_serving_app_settles_its_heap_and_exports_gc_pauses(services: Any) -> None:
    from fastapi.testclient import TestClient

    from assistant.app import create_app

    app = create_app(settings=services.settings, prepare=False)  # builds and owns its services
    callbacks = len(gc.callbacks)
    try:
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 100_000  # models, index and vocabularies
            assert len(gc.callbacks) == callbacks + 1
            gc.collect(2)
            body = client.get("/metrics").text
            assert 'assistant_gc_pause_seconds_count{generation="2"}' in body
        assert len(gc.callbacks) == callbacks  # removed at shutdown
    finally:
        gc.unfreeze()
