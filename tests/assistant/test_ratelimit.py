"""Rate limits of the browser chat: per IP and per conversation, kind 429s, IPs never kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from assistant.ratelimit import (
    MAX_BODY_BYTES,
    MemoryRateLimitStore,
    RateLimiter,
    RateLimitMiddleware,
    RedisRateLimitStore,
    limiter_for,
)
from assistant.settings import Settings, WidgetSettings

pytestmark = pytest.mark.integration

IP = "198.51.100.23"


def limited_client(services: Any, ip: str = IP, **widget: Any) -> TestClient:
    from assistant.app import create_app

    options = {"rate_limit_enabled": True, **widget}
    settings = services.settings.model_copy(update={"widget": WidgetSettings(**options)})
    return TestClient(create_app(settings=settings, services=services), client=(ip, 40000))


def chat(c: TestClient, text: str = "chào bạn", cid: str | None = None, audience: str = "child") -> Any:
    body: dict[str, Any] = {"text": text, "audience": audience}
    if cid:
        body["conversation_id"] = cid
    return c.post("/api/v1/chat", json=body)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- stores -------------------------------------------------------------------------
def test_memory_store_counts_in_windows_and_forgets_them() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock=clock)
    assert [run(store.hit("k", 2, 10)).allowed for _ in range(3)] == [True, True, False]
    refused = run(store.hit("k", 2, 10))
    assert not refused.allowed and refused.retry_after == 10
    clock.now += 4
    assert run(store.hit("k", 2, 10)).retry_after == 6
    clock.now += 6
    assert store.keys() == []  # expired entries are dropped, nothing lingers
    assert run(store.hit("k", 2, 10)).allowed


def test_memory_store_is_bounded() -> None:
    store = MemoryRateLimitStore(clock=FakeClock(), max_keys=3)
    for i in range(10):
        run(store.hit(f"k{i}", 5, 60))
    assert len(store.keys()) == 3


def test_redis_store_counts_with_a_ttl_and_hashes_ips() -> None:
    fakeredis = pytest.importorskip("fakeredis", reason="fakeredis (dev dependency) not installed")

    async def scenario() -> tuple[list[bool], list[str], int]:
        client = fakeredis.FakeAsyncRedis()
        limiter = RateLimiter(WidgetSettings(ip_limit=2, ip_window_seconds=30), RedisRateLimitStore(client))
        allowed = [(await limiter.check(IP, None)).allowed for _ in range(3)]
        keys = [k.decode() for k in await client.keys("*")]
        ttl = int(await client.ttl(keys[0]))
        await client.aclose()
        return allowed, keys, ttl

    allowed, keys, ttl = run(scenario())
    assert allowed == [True, True, False]
    assert len(keys) == 1 and IP not in keys[0] and keys[0].startswith("assistant:rl:ip:")
    assert 0 < ttl <= 30


def test_redis_outage_lets_messages_through_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def pipeline(self, **_options: Any) -> Any:
            raise ConnectionError("redis down")

    limiter = RateLimiter(WidgetSettings(ip_limit=1), RedisRateLimitStore(Broken()))
    with caplog.at_level(logging.WARNING, logger="assistant.ratelimit"):
        assert all(run(limiter.check(IP, None)).allowed for _ in range(3))
    assert "rate limit store unavailable" in caplog.text


def test_limits_are_on_by_default_and_off_by_default_only_in_test_mode() -> None:
    assert limiter_for(Settings(_env_file=None)).enabled  # type: ignore[call-arg]
    assert not limiter_for(Settings(_env_file=None, mode="test")).enabled  # type: ignore[call-arg]
    forced = Settings(_env_file=None, mode="test", widget={"rate_limit_enabled": True})  # type: ignore[call-arg]
    assert limiter_for(forced).enabled


# -- through the app ----------------------------------------------------------------
@pytest.fixture()
def ip_limited(services: Any) -> Iterator[TestClient]:
    with limited_client(services, ip_limit=3, conversation_limit=100) as c:
        yield c


def test_per_ip_limit_answers_with_a_kind_429_naming_111(ip_limited: TestClient) -> None:
    assert [chat(ip_limited).status_code for _ in range(3)] == [200, 200, 200]
    r = chat(ip_limited)
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "rate_limited"
    assert "111" in err["message"] and "đợi" in err["message"] and "Em" in err["message"]
    assert err["message_en"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-request-id"]
    assert 'assistant_rejected_requests_total{reason="rate_limited"}' in ip_limited.get("/metrics").text
    # other pages are not limited
    assert ip_limited.get("/api/v1/widget/config").status_code == 200


def test_parents_get_the_parent_wording(services: Any) -> None:
    with limited_client(services, ip_limit=1) as c:
        chat(c, audience="parent")
        msg = chat(c, audience="parent").json()["error"]["message"]
    assert "Anh/chị" in msg and "111" in msg


def test_per_conversation_limit(services: Any) -> None:
    from assistant.app import create_app

    settings = services.settings.model_copy(
        update={"widget": WidgetSettings(rate_limit_enabled=True, conversation_limit=2, ip_limit=100)}
    )
    app = create_app(settings=settings, services=services)
    # a different IP per request: only the conversation counts here
    clients = [TestClient(app, client=(f"203.0.113.{i}", 1000)) for i in range(5)]
    cid = chat(clients[0]).json()["conversation_id"]  # new conversations count per IP only
    assert chat(clients[1], "cảm ơn", cid).status_code == 200
    assert chat(clients[2], "cảm ơn", cid).status_code == 200
    assert chat(clients[3], "cảm ơn", cid).status_code == 429
    assert chat(clients[4], "chào").status_code == 200  # another conversation is fine
    for c in clients:
        c.close()


def test_a_429_reaches_an_allowed_host_page_with_cors_headers(services: Any) -> None:
    origin = "https://thcs-mau.edu.vn"
    with limited_client(services, ip_limit=1, allowed_origins=[origin]) as c:
        chat(c)
        r = c.post("/api/v1/chat", json={"text": "chào", "audience": "child"}, headers={"origin": origin})
    assert r.status_code == 429
    assert r.headers["access-control-allow-origin"] == origin
    assert "retry-after" in r.headers["access-control-expose-headers"].lower()


def test_ip_addresses_are_never_stored(services: Any, caplog: pytest.LogCaptureFixture) -> None:
    ip = "192.0.2.77"
    with caplog.at_level(logging.DEBUG), limited_client(services, ip=ip, ip_limit=2) as c:
        cid = chat(c).json()["conversation_id"]
        chat(c, "cảm ơn", cid)
        assert chat(c, "bạn ơi", cid).status_code == 429
        limiter: RateLimiter = c.app.state.rate_limiter  # type: ignore[attr-defined]
    store = limiter.store
    assert isinstance(store, MemoryRateLimitStore)
    keys = store.keys()
    assert keys and not any(ip in k for k in keys)  # only keyed hashes, in memory
    assert ip not in caplog.text
    # nothing in any table holds the address
    with services.db.session() as s:
        inspector = sa.inspect(s.get_bind())
        for name in inspector.get_table_names():
            for row in s.execute(sa.text(f'SELECT * FROM "{name}"')):
                assert ip not in " ".join(str(v) for v in row), name


def test_the_limited_chat_still_gets_its_body_intact(ip_limited: TestClient) -> None:
    r = chat(ip_limited, "làm sao để đặt mật khẩu mạnh?")
    assert r.status_code == 200 and r.json()["reply"]["citations"]
    bad = ip_limited.post(
        "/api/v1/chat", content=b'{"text": "hi", "audience":', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400  # still the API's own error


def test_an_endless_chunked_body_is_cut_off() -> None:
    async def scenario() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        reached = False

        async def app(*_asgi: Any) -> None:
            nonlocal reached
            reached = True

        chunk = b"x" * 8192

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        limiter = RateLimiter(WidgetSettings(), MemoryRateLimitStore())
        mw = RateLimitMiddleware(app, limiter)
        await mw({"type": "http", "method": "POST", "path": "/api/v1/chat", "client": (IP, 1)}, receive, send)
        assert not reached
        return sent

    sent = run(scenario())
    assert sent[0]["status"] == 413
    assert MAX_BODY_BYTES == 64 * 1024
