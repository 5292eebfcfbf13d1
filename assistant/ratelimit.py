"""Rate limits for the browser chat API: per client IP and per conversation.

A child who types fast, or a whole class behind one school IP, must not be
turned away; a script flooding the bot must be. Fixed windows count chat
messages under two keys; when either is over its limit the request gets a 429
with a kind Vietnamese message that still names 111, and a ``Retry-After``.

Privacy (issue 9): an IP address is never stored. The key is a keyed hash of
the IP, kept in memory (or in Redis for several replicas) only until its window
ends; nothing is written to the database or the logs.

    RateLimitStore (Protocol)
     ├── MemoryRateLimitStore   one process; entries expire with their window
     └── RedisRateLimitStore    shared by replicas; keys carry a TTL

When Redis is unreachable the limiter lets the message through and logs a
warning: a child asking for help must never be blocked by our own outage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.settings import Mode, Settings, WidgetSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_CONVERSATION_ID = re.compile(r"^[0-9a-f]{32}$")

RATE_LIMITED_TEXT = {
    "child": (
        "Em gửi nhanh quá, mình đọc không kịp rồi 😊 Em đợi khoảng {seconds} giây rồi gửi tiếp nhé. "
        "Nếu em đang gặp nguy hiểm, hãy gọi ngay 111 (miễn phí, 24/7)."
    ),
    "parent": (
        "Anh/chị gửi tin hơi nhanh. Xin đợi khoảng {seconds} giây rồi gửi tiếp. "
        "Khi cần hỗ trợ gấp, hãy gọi 111 (Tổng đài quốc gia bảo vệ trẻ em, miễn phí, 24/7)."
    ),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0


class RateLimitStore(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> Decision:
        """Count one hit under ``key``; refuse once ``limit`` hits fell in the current window."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateLimitStore:
    """Fixed-window counters in this process's memory; expired windows are dropped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        """The keys held now (after dropping expired ones); for tests and debugging."""
        with self._lock:
            self._purge(self._clock())
            return list(self._windows)

    def _purge(self, now: float) -> None:
        for key in [k for k, (ends, _) in self._windows.items() if ends <= now]:
            del self._windows[key]

    async def hit(self, key: str, limit: int, window: int) -> Decision:
        now = self._clock()
        with self._lock:
            ends, count = self._windows.get(key, (0.0, 0))
            if ends <= now:
                if len(self._windows) >= self._max_keys:
                    self._purge(now)
                    while len(self._windows) >= self._max_keys:  # still full: drop the oldest
                        del self._windows[next(iter(self._windows))]
                ends, count = now + window, 0
            if count >= limit:
                return Decision(False, max(1, math.ceil(ends - now)))
            self._windows[key] = (ends, count + 1)
            return Decision(True)

    async def aclose(self) -> None:
        with self._lock:
            self._windows.clear()


class RedisRateLimitStore:
    """Fixed-window counters in Redis (``INCR`` + ``EXPIRE NX``), shared by every replica."""

    def __init__(self, client: Any, prefix: str = "assistant:rl:") -> None:
        self._client = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisRateLimitStore:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("widget.redis_url is set but the 'redis' package is not installed") from exc
        return cls(aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5))

    async def hit(self, key: str, limit: int, window: int) -> Decision:
        name = self._prefix + key
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window, nx=True)
                pipe.ttl(name)
                count, _, ttl = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open, visibly
            log.warning("rate limit store unavailable, message let through: %s", type(exc).__name__)
            return Decision(True)
        if int(count) > limit:
            return Decision(False, max(1, int(ttl) if int(ttl) > 0 else window))
        return Decision(True)

    async def aclose(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """Applies the widget's limits; IPs become keyed hashes before they reach a store."""

    def __init__(
        self,
        settings: WidgetSettings,
        store: RateLimitStore,
        ip_key: bytes | None = None,
        enabled: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.enabled = enabled
        self._ip_key = ip_key or secrets.token_bytes(32)

    @classmethod
    def from_settings(
        cls, settings: WidgetSettings, ip_key: bytes | None = None, enabled: bool = True
    ) -> RateLimiter:
        """Memory store by default; Redis when ``redis_url`` is set (then ``ip_key`` must be
        shared by the replicas, e.g. derived from the pseudonym key, so that they agree)."""
        if settings.redis_url:
            return cls(settings, RedisRateLimitStore.from_url(settings.redis_url), ip_key, enabled)
        return cls(settings, MemoryRateLimitStore(), ip_key, enabled)

    def ip_token(self, ip: str) -> str:
        return hmac.new(self._ip_key, ip.encode(), hashlib.sha256).hexdigest()[:24]

    async def check(self, ip: str | None, conversation_id: str | None) -> Decision:
        s = self.settings
        if ip:
            decision = await self.store.hit("ip:" + self.ip_token(ip), s.ip_limit, s.ip_window_seconds)
            if not decision.allowed:
                return decision
        if conversation_id:
            return await self.store.hit(
                "conv:" + conversation_id, s.conversation_limit, s.conversation_window_seconds
            )
        return Decision(True)


def rate_limited_body(audience: str, retry_after: int) -> dict[str, Any]:
    text = RATE_LIMITED_TEXT.get(audience, RATE_LIMITED_TEXT["child"])
    return {
        "error": {
            "code": "rate_limited",
            "message": text.format(seconds=retry_after),
            "message_en": f"Too many messages; try again in {retry_after} seconds.",
            "retry_after": retry_after,
        }
    }


class RateLimitMiddleware:
    """ASGI middleware limiting ``POST`` to the browser chat paths.

    It reads the (bounded) JSON body once to find the conversation id and the
    audience, then replays it unchanged to the route.
    """

    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, paths: tuple[str, ...] = ("/api/v1/chat",)
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.paths
            or not self.limiter.enabled
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await send_json(send, 413, too_large_body())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        conversation_id, audience = _peek(body)
        client = scope.get("client")
        ip = client[0] if client else None
        decision = await self.limiter.check(ip, conversation_id)
        if not decision.allowed:
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            if services is not None:
                services.metrics.rejected.labels("rate_limited").inc()
            await send_json(
                send,
                429,
                rate_limited_body(audience, decision.retry_after),
                [(b"retry-after", str(decision.retry_after).encode())],
            )
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _peek(body: bytes) -> tuple[str | None, str]:
    """The conversation id and audience of a chat body, if it is the JSON it should be."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, "child"
    if not isinstance(data, dict):
        return None, "child"
    cid = data.get("conversation_id")
    audience = data.get("audience")
    return (
        cid if isinstance(cid, str) and _CONVERSATION_ID.match(cid) else None,
        audience if audience in ("child", "parent") else "child",
    )


def too_large_body() -> dict[str, Any]:
    """The 413 answer for a body over ``MAX_BODY_BYTES`` (here and in the request middleware)."""
    return {
        "error": {
            "code": "payload_too_large",
            "message": "Tin nhắn quá dài. Em hãy viết ngắn hơn nhé.",
            "message_en": f"Request body larger than {MAX_BODY_BYTES} bytes.",
        }
    }


async def send_json(
    send: Send, status: int, content: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(content, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def limiter_for(settings: Settings) -> RateLimiter:
    """The app's limiter: on unless switched off (off by default in test mode).

    With Redis the IP hash key is derived from the pseudonym key so that every
    replica agrees; in memory a random key per process is enough (and better).
    """
    widget = settings.widget
    enabled = (
        widget.rate_limit_enabled if widget.rate_limit_enabled is not None else settings.mode != Mode.test
    )
    ip_key = None
    if widget.redis_url:
        secret = settings.security.pseudonym_key.get_secret_value().encode()
        ip_key = hmac.new(secret, b"rate-limit-ip", hashlib.sha256).digest()
    return RateLimiter.from_settings(widget, ip_key=ip_key, enabled=enabled)
