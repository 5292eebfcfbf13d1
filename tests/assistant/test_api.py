from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.db import Message

pytestmark = pytest.mark.integration


def count_messages(services: Any) -> int:
    with services.db.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Message)) or 0)


def test_greeting_gets_a_vietnamese_reply(client: Any) -> None:
    r = client.post("/api/v1/chat", json={"text": "chào bạn", "audience": "child"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["conversation_id"]) == 32
    assert "Chào em" in body["reply"]["text"]
    assert body["reply"]["suggestions"]


def test_question_is_answered_from_an_article_with_citation(client: Any, services: Any) -> None:
    r = client.post(
        "/api/v1/chat", json={"text": "làm sao để đặt mật khẩu mạnh cho tài khoản?", "audience": "child"}
    )
    assert r.status_code == 200
    reply = r.json()["reply"]
    assert reply["citations"], reply
    cited = reply["citations"][0]
    assert cited["id"] in services.index.articles
    assert cited["url"] == f"/kb/{cited['id']}"


def test_public_response_never_reveals_risk(client: Any) -> None:
    r = client.post("/api/v1/chat", json={"text": "chú hàng xóm sờ vào chỗ kín của em", "audience": "child"})
    assert r.status_code == 200
    raw = r.text
    for word in ("severity", "categories", "sexual_abuse", "primary", "signals", "score"):
        assert word not in raw
    assert "111" in r.json()["reply"]["text"]


def test_conversation_continues_and_history_is_stored(client: Any, services: Any) -> None:
    first = client.post("/api/v1/chat", json={"text": "xin chào", "audience": "parent"}).json()
    cid = first["conversation_id"]
    second = client.post(
        "/api/v1/chat", json={"conversation_id": cid, "text": "cảm ơn nhé", "audience": "parent"}
    )
    assert second.status_code == 200 and second.json()["conversation_id"] == cid
    with services.db.session() as s:
        rows = s.scalars(sa.select(Message.role).where(Message.conversation_id == cid)).all()
    assert rows == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"text": "a" * 2001, "audience": "child"}, 422, "message_too_long"),
        ({"text": "   ", "audience": "child"}, 422, "invalid_input"),
        ({"text": "", "audience": "child"}, 422, "invalid_input"),
        ({"text": "hi", "audience": "teacher"}, 422, "invalid_input"),
        ({"audience": "child"}, 422, "invalid_input"),
        ({"text": "hi", "audience": "child", "channel": "zalo"}, 422, "invalid_input"),
        ({"text": "hi", "audience": "child", "conversation_id": "../../etc"}, 422, "invalid_input"),
        ({"text": "hi", "audience": "child", "conversation_id": "0" * 32}, 404, "not_found"),
    ],
)
def test_bad_requests_get_clear_bilingual_errors_and_store_nothing(
    client: Any, services: Any, payload: dict[str, Any], status: int, code: str
) -> None:
    before = count_messages(services)
    r = client.post("/api/v1/chat", json=payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"] and err["message_en"]
    assert count_messages(services) == before


def test_invalid_json_is_a_400(client: Any, services: Any) -> None:
    before = count_messages(services)
    r = client.post("/api/v1/chat", content=b'{"text": "hi", "audience":', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    assert count_messages(services) == before


def test_oversized_body_is_rejected_before_parsing(client: Any) -> None:
    r = client.post("/api/v1/chat", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_health_ready_metrics_and_docs(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "index": "ok"}
    client.post("/api/v1/chat", json={"text": "chào", "audience": "child"})
    metrics = client.get("/metrics").text
    assert "assistant_chat_messages_total" in metrics
    assert 'assistant_pipeline_stage_seconds_count{stage="risk"}' in metrics
    assert client.get("/openapi.json").json()["paths"]["/api/v1/chat"]
    assert client.get("/docs").status_code == 200


def test_request_id_is_echoed(client: Any) -> None:
    r = client.get("/healthz", headers={"x-request-id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


def test_every_answer_carries_a_request_id_even_an_error(client: Any) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert client.get("/healthz").headers["x-request-id"] != generated
    too_large = client.post("/api/v1/chat", content=b"x" * 70_000, headers={"x-request-id": "big-1"})
    assert too_large.status_code == 413 and too_large.headers["x-request-id"] == "big-1"
    unknown = client.post(
        "/api/v1/chat",
        json={"conversation_id": "0" * 32, "text": "chào", "audience": "child"},
        headers={"x-request-id": "lost-1"},
    )
    assert unknown.status_code == 404 and unknown.headers["x-request-id"] == "lost-1"
    assert client.get("/healthz", headers={"x-request-id": "z" * 100}).headers["x-request-id"] == "z" * 64


def test_the_chat_turn_logs_under_the_request_id(client: Any) -> None:
    """The turn runs in a worker thread: the request id must follow it there."""
    from assistant.logs import RequestIdFilter

    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(getattr(record, "request_id", "?"))

    handler = Capture(level=logging.INFO)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("assistant.conversations")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        r = client.post("/api/v1/chat", json={"text": "chào bạn", "audience": "child"},
                        headers={"x-request-id": "turn-42"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert r.status_code == 200
    assert seen and set(seen) == {"turn-42"}


def test_requests_are_measured_by_route_and_status(client: Any) -> None:
    client.post("/api/v1/chat", json={"text": "chào bạn", "audience": "child"})
    client.post("/api/v1/chat", content=b"x" * 70_000)
    client.get("/khong-co-trang-nay")
    text = client.get("/metrics").text
    for labels in (
        'method="POST",route="/api/v1/chat",status="200"',
        'method="POST",route="unmatched",status="413"',
        'method="GET",route="unmatched",status="404"',
    ):
        assert any(line.startswith("assistant_http_request") and labels in line for line in text.splitlines()), labels


@pytest.mark.parametrize("text", ["công thức làm bánh flan", "thu do cua nuoc phap la gi"])
def test_out_of_scope_question_says_so_and_offers_111(client: Any, text: str) -> None:
    r = client.post("/api/v1/chat", json={"text": text, "audience": "child"})
    reply = r.json()["reply"]
    assert reply["citations"] == []
    assert "111" in reply["text"] and "không muốn đoán" in reply["text"]


def test_parent_question_cites_a_parent_article(client: Any, services: Any) -> None:
    r = client.post("/api/v1/chat", json={"text": "cách cài family link cho con", "audience": "parent"})
    cited = r.json()["reply"]["citations"][0]["id"]
    assert services.index.articles[cited].audience in ("parent", "both")


def test_an_unexpected_error_is_a_json_500_with_111(app: Any, services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(services.chat, "handle", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/v1/chat", json={"text": "chào bạn", "audience": "child"})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "internal_error" and "111" in error["message"]
    assert "simulated failure" not in r.text  # no internals leak to the client


def test_request_threads_setting_bounds_the_blocking_handlers(services: Any) -> None:
    from anyio import to_thread
    from fastapi.testclient import TestClient

    from assistant.app import create_app

    base = services.settings
    settings = base.model_copy(update={"server": base.server.model_copy(update={"request_threads": 7})})
    with TestClient(create_app(settings, services=services)) as c:
        assert c.portal is not None
        assert c.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens) == 7
        assert c.post("/api/v1/chat", json={"text": "chào bạn", "audience": "child"}).status_code == 200
