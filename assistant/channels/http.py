"""One outgoing HTTP client for the platforms' APIs: timeouts, bounded retries on
5xx, 429 and network errors (honouring ``Retry-After``), every failure logged and
counted. A 4xx answer is returned to the caller, which reads the platform's own
error body (Graph API error codes, Zalo ``error`` numbers).

Sending is not idempotent on either platform, so a retry after a lost answer may
deliver a message twice: for a child-safety service a duplicate reply is a far
smaller harm than a lost one. Access tokens travel in headers or query strings
that are never logged (only the method and the URL path are).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from assistant import __version__
from assistant.channels.base import DeliveryUnavailable
from assistant.channels.metrics import ChannelMetrics

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class PlatformHttpClient:
    """``httpx.Client`` with the retry policy of every channel."""

    def __init__(
        self,
        platform: str,
        metrics: ChannelMetrics | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.platform = platform
        self.metrics = metrics
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.backoff = backoff
        self._sleep = sleep
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            transport=transport,
            follow_redirects=False,
            headers={"user-agent": f"child-safety-assistant/{__version__}"},
        )

    def close(self) -> None:
        self._client.close()

    def count_error(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.http_errors.labels(self.platform, reason).inc()

    def _observe(self, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.http_requests.labels(self.platform, outcome).observe(time.perf_counter() - started)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                return retry_after
        return float(self.backoff * (2**attempt) * (0.5 + random.random() / 2))

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_on: Callable[[httpx.Response], str | None] | None = None,
    ) -> httpx.Response:
        """The platform's answer (2xx-4xx); ``DeliveryUnavailable`` when retries are spent.

        ``retry_on`` names a reason to retry an answer that is not 429/5xx (Zalo says
        "too many requests" with HTTP 200 and ``error: -32``).
        """
        path = httpx.URL(url).path
        attempt = 0
        while True:
            started = time.perf_counter()
            response: httpx.Response | None = None
            try:
                response = self._client.request(method, url, json=json, data=data, params=params, headers=headers)
            except httpx.TimeoutException:
                reason = "timeout"
            except httpx.TransportError as exc:
                reason = f"network_{type(exc).__name__}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    reason = "429" if status == 429 else "5xx"
                else:
                    extra = retry_on(response) if retry_on is not None else None
                    if extra is None:
                        self._observe("ok" if status < 400 else "client_error", started)
                        return response
                    reason = extra
            self._observe(reason, started)
            delay = self._delay(attempt, response)
            status_code = response.status_code if response is not None else None
            if attempt >= self.max_retries or delay > self.max_retry_after:
                self.count_error(reason)
                log.error(
                    "%s API call failed: %s %s (%s, %d attempts%s)",
                    self.platform,
                    method,
                    path,
                    reason,
                    attempt + 1,
                    f", Retry-After {delay:.0f}s too long" if delay > self.max_retry_after else "",
                    extra={"platform": self.platform, "reason": reason, "status": status_code},
                )
                raise DeliveryUnavailable(
                    f"{self.platform} API unavailable ({reason} after {attempt + 1} attempts)",
                    status=status_code,
                )
            if self.metrics is not None:
                self.metrics.http_retries.labels(self.platform, reason).inc()
            log.warning(
                "%s API call %s %s: %s, retrying in %.2fs",
                self.platform,
                method,
                path,
                reason,
                delay,
                extra={"platform": self.platform, "reason": reason, "status": status_code},
            )
            self._sleep(delay)
            attempt += 1
