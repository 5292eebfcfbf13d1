"""The shared outgoing HTTP client: retries on 5xx/429/network errors, Retry-After,
giving up visibly (log line + counter)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from prometheus_client import CollectorRegistry

from assistant.channels.base import DeliveryUnavailable
from assistant.channels.http import PlatformHttpClient, parse_retry_after
from assistant.channels.metrics import ChannelMetrics
from tests.channels.conftest import FakePlatform, Recorded, Scripted

pytestmark = pytest.mark.integration


class Echo(FakePlatform):
    def answer(self, request: Recorded) -> Scripted:
        return Scripted(200, {"ok": True, "got": request.body})


@pytest.fixture()
def server() -> Iterator[Echo]:
    s = Echo()
    yield s
    s.close()


@pytest.fixture()
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def client(registry: CollectorRegistry, sleeps: list[float], **kwargs: float) -> PlatformHttpClient:
    return PlatformHttpClient(
        "test", ChannelMetrics(registry), timeout=2.0, max_retries=int(kwargs.pop("max_retries", 3)),
        max_retry_after=kwargs.pop("max_retry_after", 30.0), backoff=0.01, sleep=sleeps.append,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"platform": "test", **labels}) or 0.0


def test_retry_after_seconds_is_honoured(server: Echo, registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    server.script(Scripted(429, {}, {"Retry-After": "7"}))
    response = client(registry, sleeps).request("POST", server.url + "/send", json={"a": 1})
    assert response.json() == {"ok": True, "got": {"a": 1}}
    assert sleeps == [7.0] and len(server.requests) == 2
    assert sample(registry, "assistant_channel_http_retries_total", reason="429") == 1


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=12), usegmt=True), now) == 12.0
    assert parse_retry_after("not a date") is None and parse_retry_after(None) is None


def test_5xx_backs_off_then_succeeds(server: Echo, registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    server.script(Scripted(500, {}), Scripted(503, {}))
    assert client(registry, sleeps).request("POST", server.url + "/send", json={}).status_code == 200
    assert len(sleeps) == 2 and 0 < sleeps[0] <= sleeps[1] * 2
    assert sample(registry, "assistant_channel_http_retries_total", reason="5xx") == 2


def test_4xx_is_returned_to_the_caller_without_retry(server: Echo, registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    server.script(Scripted(400, {"error": {"code": 100}}))
    assert client(registry, sleeps).request("POST", server.url + "/send", json={}).status_code == 400
    assert sleeps == [] and len(server.requests) == 1


def test_retries_spent_is_an_error_logged_and_counted(
    server: Echo, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps: list[float] = []
    server.script(*[Scripted(502, {})] * 3)
    with caplog.at_level(logging.ERROR, logger="assistant.channels.http"), pytest.raises(DeliveryUnavailable):
        client(registry, sleeps, max_retries=2).request("POST", server.url + "/send?access_token=SECRET", json={})
    assert len(server.requests) == 3
    assert sample(registry, "assistant_channel_http_errors_total", reason="5xx") == 1
    [record] = [r for r in caplog.records if "API call failed" in r.getMessage()]
    assert "SECRET" not in record.getMessage()  # the query string (tokens) is never logged


def test_a_retry_after_longer_than_allowed_gives_up_at_once(server: Echo, registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    server.script(Scripted(429, {}, {"Retry-After": "3600"}))
    with pytest.raises(DeliveryUnavailable):
        client(registry, sleeps, max_retry_after=30.0).request("POST", server.url + "/send", json={})
    assert sleeps == [] and len(server.requests) == 1


def test_network_errors_are_retried(registry: CollectorRegistry) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(DeliveryUnavailable):
        client(registry, sleeps, max_retries=2).request("POST", f"http://127.0.0.1:{port}/send", json={})
    assert len(sleeps) == 2
    assert sample(registry, "assistant_channel_http_errors_total", reason="network_ConnectError") == 1


def test_timeouts_are_retried(server: Echo, registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    server.script(Scripted(200, {}, delay=0.5))
    http = PlatformHttpClient("test", ChannelMetrics(registry), timeout=0.2, max_retries=1, backoff=0.01,
                              sleep=sleeps.append)
    assert http.request("POST", server.url + "/send", json={}).status_code == 200
    assert sample(registry, "assistant_channel_http_retries_total", reason="timeout") == 1
