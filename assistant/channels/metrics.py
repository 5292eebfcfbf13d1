"""Prometheus metrics of the channels, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from assistant.metrics import LATENCY_BUCKETS


class ChannelMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhooks = Counter(
            "assistant_channel_webhooks_total",
            "Webhook requests by channel and outcome (accepted, rejected, duplicate...)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.events = Counter(
            "assistant_channel_events_total",
            "Inbound events processed, by channel, kind and outcome",
            ["channel", "kind", "outcome"],
            registry=registry,
        )
        self.sent = Counter(
            "assistant_channel_messages_sent_total",
            "Outbound messages by channel and kind (reply, human, quota_notice...)",
            ["channel", "kind"],
            registry=registry,
        )
        self.not_sent = Counter(
            "assistant_channel_messages_not_sent_total",
            "Outbound messages held back, by channel and reason (quota, window, error)",
            ["channel", "reason"],
            registry=registry,
        )
        self.http_requests = Histogram(
            "assistant_channel_http_seconds",
            "Outgoing platform API calls, by platform and outcome",
            ["platform", "outcome"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.http_retries = Counter(
            "assistant_channel_http_retries_total",
            "Retried platform API calls, by platform and reason (429, 5xx, timeout...)",
            ["platform", "reason"],
            registry=registry,
        )
        self.http_errors = Counter(
            "assistant_channel_http_errors_total",
            "Platform API calls that finally failed, by platform and reason",
            ["platform", "reason"],
            registry=registry,
        )
        self.token_refreshes = Counter(
            "assistant_channel_token_refreshes_total",
            "Access token refreshes, by platform and outcome",
            ["platform", "outcome"],
            registry=registry,
        )
