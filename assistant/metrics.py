"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
