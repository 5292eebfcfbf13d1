"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from assistant.db.session import WriteLock

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "assistant_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.chat_messages = Counter(
            "assistant_chat_messages_total",
            "Chat messages handled",
            ["channel", "audience", "reply_kind"],
            registry=self.registry,
        )
        self.escalations = Counter(
            "assistant_escalations_total",
            "Messages judged severity >= 3",
            ["channel", "severity"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "assistant_pipeline_stage_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.rejected = Counter(
            "assistant_rejected_requests_total",
            "Requests rejected as invalid",
            ["reason"],
            registry=self.registry,
        )

        self.gc_pauses = Histogram(
            "assistant_gc_pause_seconds",
            "Pauses of Python's cyclic garbage collector (every thread waits)",
            ["generation"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )

    def watch_gc(self) -> Callable[[], None]:
        """Time every garbage collection of this process into ``gc_pauses``; returns
        the function that stops it. The serving process (one app) calls it once:
        ``gc.callbacks`` is process-wide."""
        started: list[float] = []

        def callback(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            elif started:
                self.gc_pauses.labels(generation=str(info["generation"])).observe(time.perf_counter() - started.pop())

        gc.callbacks.append(callback)

        def stop() -> None:
            if callback in gc.callbacks:
                gc.callbacks.remove(callback)

        return stop

    def watch_write_lock(self, lock: WriteLock) -> None:
        """Export the SQLite write lock's totals (every write transaction of the
        process takes it in turn: its waits are the first sign of a write-bound service)."""
        self.registry.register(_WriteLockCollector(lock))

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WriteLockCollector(Collector):
    def __init__(self, lock: WriteLock) -> None:
        self.lock = lock

    def collect(self) -> Iterator[CounterMetricFamily]:
        acquisitions, waited, held = self.lock.stats()
        yield CounterMetricFamily(
            "assistant_sqlite_write_lock_acquisitions", "Write transactions that took the SQLite write lock",
            value=acquisitions,
        )
        yield CounterMetricFamily(
            "assistant_sqlite_write_lock_wait_seconds", "Time spent waiting for the SQLite write lock", value=waited
        )
        yield CounterMetricFamily(
            "assistant_sqlite_write_lock_held_seconds", "Time the SQLite write lock was held", value=held
        )
