"""Production logs carry no message text; the public API answers odd input with clean 4xx.

The schemathesis run is bounded (few examples per operation, derandomized, no
example database) and calls the ASGI app in process: no network.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.crypto import generate_key
from assistant.db import Message
from assistant.logs import ContentFilter
from tests.channels.conftest import channel_env, graph, zalo_api  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

MARKER = "Trần Thị Bích ở số nhà 77 gọi 0987654321 zqxmarker"


@pytest.fixture()
def prod_client(services: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from assistant.app import create_app

    settings = services.settings.model_copy(
        update={
            "mode": "production",
            "security": services.settings.security.model_copy(update={"data_keys": []}),
        }
    )
    prod = dataclasses.replace(services, settings=settings)
    with TestClient(create_app(services=prod)) as client:
        yield client
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers if not getattr(h, "_assistant", False)]


def _leaks(records: list[logging.LogRecord]) -> list[str]:
    found = []
    for r in records:
        blob = r.getMessage() + " " + " ".join(str(v) for v in r.__dict__.values())
        if "zqxmarker" in blob or "0987654321" in blob:
            found.append(f"{r.name}: {r.getMessage()}")
    return found


def test_no_message_text_in_logs_at_info_in_production(prod_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers = {"origin": "http://127.0.0.1"}
    r = prod_client.post("/api/v1/chat", json={"text": MARKER, "audience": "child",
                                                "consent": {"notice_version": "1"}}, headers=headers)
    assert r.status_code == 200
    cid = r.json()["conversation_id"]
    # The widget's path: the page, its config, then chat turns; a disclosure too.
    assert prod_client.get("/api/v1/widget/config").status_code == 200
    prod_client.get("/")
    prod_client.post("/api/v1/chat", json={"text": "anh ấy dọa tung ảnh của em " + MARKER,
                                           "audience": "child", "conversation_id": cid})
    prod_client.post("/api/v1/chat", json={"text": MARKER * 200, "audience": "child", "conversation_id": cid})
    prod_client.post("/api/v1/chat", json={"text": MARKER, "audience": "nobody"})
    assert r.status_code == 200
    assert caplog.records, "the chat turn should log something at INFO"
    assert _leaks(caplog.records) == []


def test_no_message_text_in_logs_from_channels(
    caplog: pytest.LogCaptureFixture, channel_env: Any  # noqa: F811 - the imported fixture
) -> None:
    from tests.channels.helpers import Hook

    caplog.set_level(logging.INFO)
    hook = Hook("messenger", channel_env)
    user = "1234567890123456"
    body = hook.text(user, MARKER)
    assert hook.post(body).status_code == 200
    channel_env.wait()
    assert _leaks(caplog.records) == []


def test_content_filter_scrubs_content_fields_and_personal_data() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user said %s", (MARKER,), None)
    record.text = MARKER  # type: ignore[attr-defined]
    ContentFilter().filter(record)
    assert record.text == "[redacted]"  # type: ignore[attr-defined]
    assert "0987654321" not in record.getMessage() and "Bích" not in record.getMessage()


def test_production_keyring_setting_is_independent_of_services() -> None:
    # Sanity: a generated key is a valid data key (used by `keys generate`).
    from assistant.crypto import valid_key

    assert valid_key(generate_key())


PAYLOADS: list[Any] = [
    {"text": "a" * 100_000, "audience": "child"},
    {"text": "x" * 2001, "audience": "child"},
    {"text": "\x00\x01\x02", "audience": "child"},
    {"text": "   ", "audience": "child"},
    {"text": "'; DROP TABLE message; --", "audience": "child", "conversation_id": "' OR 1=1 --"},
    {"text": "<script>alert(1)</script>", "audience": "robot"},
    {"text": ["list"], "audience": "child"},
    {"text": {"$ne": None}, "audience": "child"},
    {"text": "ok", "audience": "child", "conversation_id": "f" * 32},
    {"text": "ok", "audience": "child", "consent": {"notice_version": "../../etc/passwd"}},
    {"audience": "child"},
    [],
    None,
]
RAW_BODIES: list[bytes] = [
    b"\xff\xfe\x00\x00binary",
    "{\"text\": \"caf\u00e9\", \"audience\": \"child\"}".encode("latin-1"),
    b"{\"text\": \"\xed\xa0\x80\", \"audience\": \"child\"}",  # a lone surrogate in UTF-8
    b"{" * 5000,
    b'{"text": "\\ud800 lone surrogate (JSON escape)", "audience": "child"}',
    b"\x1f\x8b\x08\x00gzip?",
]


def _count(services: Any) -> int:
    with services.db.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Message)) or 0)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_bad_json_payloads_get_a_clean_4xx_and_store_nothing(client: Any, services: Any, payload: Any) -> None:
    before = _count(services)
    r = client.post("/api/v1/chat", json=payload)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"]
    assert _count(services) == before


@pytest.mark.parametrize("body", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_binary_and_mixed_encoding_bodies_get_a_clean_4xx(client: Any, services: Any, body: bytes) -> None:
    before = _count(services)
    r = client.post("/api/v1/chat", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert _count(services) == before


def test_valid_messages_between_bad_ones_are_all_kept(client: Any, services: Any) -> None:
    r = client.post("/api/v1/chat", json={"text": "Xin chào 👋 — tiếng Việt có dấu", "audience": "child"})
    cid = r.json()["conversation_id"]
    for payload in PAYLOADS[:6]:
        client.post("/api/v1/chat", json=payload if isinstance(payload, dict) else {})
        ok = client.post("/api/v1/chat", json={"text": "chào lần nữa", "audience": "child", "conversation_id": cid})
        assert ok.status_code == 200
    with services.db.session() as s:
        n = s.scalar(sa.select(sa.func.count()).select_from(Message).where(Message.conversation_id == cid))
    assert n == 2 + 6 * 2


def test_openapi_schema_fuzz_finds_no_server_errors(app: Any) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema fails here, loudly
        if operation.path in ("/metrics",):
            continue

        @settings(max_examples=8, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"

        run()
        checked += 1
    assert checked >= 5
