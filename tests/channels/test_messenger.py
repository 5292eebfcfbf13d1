"""Messenger against a local fake Graph API: verification, the Send API's rules
(RESPONSE within 24 hours, HUMAN_AGENT for people only), 429/5xx, errors."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.channels.base import QuickReply
from assistant.channels.models import ChannelEvent, ChannelUser
from assistant.channels.simulate import messenger_body
from assistant.db import Message
from assistant.db.models import utcnow
from assistant.prompts import default_prompts
from tests.channels.conftest import PAGE_ID, VERIFY_TOKEN, ChannelEnv, Scripted, new_user
from tests.channels.helpers import Hook

pytestmark = pytest.mark.integration


@pytest.fixture()
def hook(channel_env: ChannelEnv) -> Hook:
    return Hook("messenger", channel_env)


def known(hook: Hook, user: str, audience: str = "child") -> int:
    store = hook.env.channels.store
    user_id = store.ensure_user("messenger", hook.env.channels.pseudonym("messenger", user), user)
    store.set_audience(user_id, audience)
    store.record_consent(user_id, hook.env.channels.notice_version, audience, utcnow())  # the notice accepted
    return int(user_id)


def conversation_of(hook: Hook, user: str) -> str:
    with hook.env.services.db.session() as s:
        row = s.scalars(
            sa.select(ChannelUser).where(
                ChannelUser.channel == "messenger",
                ChannelUser.user_pseudonym == hook.env.channels.pseudonym("messenger", user),
            )
        ).one()
        assert row.conversation_id is not None
        return str(row.conversation_id)


def metric(env: ChannelEnv, name: str, **labels: str) -> float:
    return env.services.metrics.registry.get_sample_value(name, labels) or 0.0


def test_verification_echoes_the_challenge(hook: Hook) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = hook.env.client.get("/webhooks/messenger", params=params)
    assert response.status_code == 200 and response.text == "1158201444"


def test_verification_with_a_wrong_token_is_refused_and_logged(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
    with caplog.at_level(logging.WARNING, logger="assistant.channels.routes"):
        response = hook.env.client.get("/webhooks/messenger", params=params)
    assert response.status_code == 403 and "1158201444" not in response.text
    assert any("verification refused" in r.getMessage() for r in caplog.records)


def test_bot_replies_are_responses_and_never_tagged(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "làm sao nhận biết người lạ trên mạng?"))
    hook.env.wait()
    [sent] = hook.sent(user)
    raw = sent["raw"]
    assert raw["messaging_type"] == "RESPONSE" and "tag" not in raw
    assert raw["recipient"] == {"id": user}


def test_human_reply_uses_the_human_agent_tag(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "em bị bạn trên mạng dọa tung ảnh"))
    hook.env.wait()
    conversation_id = conversation_of(hook, user)
    outcome = hook.env.channels.send_human_reply(conversation_id, "Chào em, cô là tư vấn viên của 111.")
    assert outcome.sent, outcome
    bot, human = hook.sent(user)
    assert bot["raw"]["messaging_type"] == "RESPONSE"
    assert (human["raw"]["messaging_type"], human["raw"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    with hook.env.services.db.session() as s:
        roles = s.scalars(sa.select(Message.role).where(Message.conversation_id == conversation_id).order_by(Message.id))
        assert list(roles)[-1] == "counselor"


def test_human_reply_after_seven_days_is_not_sent(hook: Hook) -> None:
    user = new_user()
    user_id = known(hook, user)
    hook.post(hook.text(user, "cảm ơn"))
    hook.env.wait()
    conversation_id = conversation_of(hook, user)
    with hook.env.services.db.session() as s:
        s.get_one(ChannelUser, user_id).last_user_message_at = utcnow() - timedelta(days=8)
    outcome = hook.env.channels.send_human_reply(conversation_id, "Em còn ở đó không?")
    assert (outcome.sent, outcome.reason) == (False, "human: window_closed")
    assert len(hook.sent(user)) == 1


def test_no_bot_reply_is_attempted_outside_the_24_hour_window(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    known(hook, user)
    hook.env.channels.clock = lambda: utcnow() + timedelta(hours=25)  # processed a day late
    with caplog.at_level(logging.WARNING, logger="assistant.channels.service"):
        hook.post(hook.text(user, "chào"))
        hook.env.wait()
    assert hook.sent(user) == []
    assert any("not sent: window_closed" in r.getMessage() for r in caplog.records)


def test_429_is_retried_after_retry_after(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.graph.script(Scripted(429, {"error": {"code": 613, "message": "Calls limit"}}, {"Retry-After": "1"}))
    started = time.perf_counter()
    hook.post(hook.text(user, "chào bạn"))
    hook.env.wait()
    assert time.perf_counter() - started >= 1.0
    assert len(hook.sent(user)) == 1
    assert metric(hook.env, "assistant_channel_http_retries_total", platform="messenger", reason="429") == 1


def test_5xx_answers_are_retried(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.graph.script(Scripted(500, {"error": {"code": 2}}), Scripted(503, {}))
    hook.post(hook.text(user, "chào bạn"))
    hook.env.wait()
    assert len(hook.sent(user)) == 1
    assert metric(hook.env, "assistant_channel_http_retries_total", platform="messenger", reason="5xx") == 2


def test_platform_down_then_back_sends_the_stored_reply_once(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.channels.retry_delays = (0.05, 0.05)
    hook.env.graph.script(*[Scripted(500, {})] * 4)  # the first attempt and its 3 retries
    mid = "mid-down-then-back-" + user
    hook.post(hook.text(user, "chú hàng xóm hay sờ vào người em", mid=mid))
    hook.env.wait()
    [sent] = hook.texts(user)
    assert "111" in sent
    pseudonym = hook.env.channels.pseudonym("messenger", user)
    with hook.env.services.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Message).where(Message.user_pseudonym == pseudonym)) == 1
        event = s.scalars(sa.select(ChannelEvent).where(ChannelEvent.event_key == mid)).one()
        assert (event.status, event.attempts, event.text) == ("done", 2, None)
    assert metric(hook.env, "assistant_channel_events_total", channel="messenger", kind="text", outcome="retry") == 1


def test_a_refused_page_token_is_logged_and_not_retried(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    known(hook, user)
    hook.env.graph.script(Scripted(400, {"error": {"message": "Error validating access token", "code": 190}}))
    with caplog.at_level(logging.WARNING, logger="assistant.channels.service"):
        hook.post(hook.text(user, "chào"))
        hook.env.wait()
    assert hook.sent(user) == []
    assert any("refused a reply message" in r.getMessage() for r in caplog.records)
    with hook.env.services.db.session() as s:
        event = s.scalars(
            sa.select(ChannelEvent).where(ChannelEvent.user_pseudonym == hook.env.channels.pseudonym("messenger", user))
        ).one()
        assert event.status == "done" and event.attempts == 1 and "TokenExpired" in (event.error or "")
    assert metric(hook.env, "assistant_channel_http_errors_total", platform="messenger", reason="token") == 1


def test_get_started_postback_asks_the_audience(hook: Hook) -> None:
    user = new_user()
    body = messenger_body(PAGE_ID, user, "Bắt đầu", postback_payload="GET_STARTED")
    assert hook.post(body).json()["accepted"] == 1
    hook.env.wait()
    [sent] = hook.sent(user)
    prompts = default_prompts()  # the privacy notice, then the question, in one message
    assert sent["text"] == prompts.text("privacy_notice", "child") + "\n\n" + prompts.text("ask_audience", "child")
    assert sent["quick_replies"] == ["AUDIENCE_CHILD", "AUDIENCE_PARENT"]


def test_typed_answer_to_the_audience_question(hook: Hook) -> None:
    user = new_user()
    hook.post(messenger_body(PAGE_ID, user, "Bắt đầu", postback_payload="GET_STARTED"))
    hook.env.wait()
    hook.post(hook.text(user, "Phụ huynh"))  # typed instead of tapped
    hook.env.wait()
    assert hook.texts(user)[1] == default_prompts().text(
        "greeting", "parent", hook.env.channels.pseudonym("messenger", user)
    )


def test_refused_quick_replies_fall_back_to_numbered_text(hook: Hook) -> None:
    channel: Any = hook.env.channels.get("messenger")
    user = new_user()
    hook.env.graph.script(Scripted(400, {"error": {"code": 100, "message": "(#100) Invalid quick_replies"}}))
    sent = channel.send_quick_replies(
        user, "Em là học sinh hay phụ huynh?", [QuickReply("Em là học sinh", "A"), QuickReply("Tôi là phụ huynh", "B")]
    )
    assert sent.fallback_used
    [message] = hook.sent(user)
    assert message["text"] == "Em là học sinh hay phụ huynh?\n1. Em là học sinh\n2. Tôi là phụ huynh"
    assert message["quick_replies"] == []


def test_echoes_reads_and_deliveries_are_ignored(hook: Hook) -> None:
    import json

    user = new_user()
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": 1,
                    "messaging": [
                        {"sender": {"id": PAGE_ID}, "recipient": {"id": user}, "timestamp": 1,
                         "message": {"is_echo": True, "mid": "m_echo", "text": "an echo"}},
                        {"sender": {"id": user}, "recipient": {"id": PAGE_ID}, "timestamp": 1,
                         "read": {"watermark": 1}},
                        {"sender": {"id": user}, "recipient": {"id": PAGE_ID}, "timestamp": 1,
                         "delivery": {"mids": ["m_1"], "watermark": 1}},
                    ],
                }
            ],
        }
    ).encode()
    assert hook.post(body).json() == {"status": "ok", "accepted": 0, "duplicates": 0}


def test_disabled_channel_is_not_found(hook: Hook) -> None:
    hook.env.channels.channels.pop("messenger")
    body = hook.text(new_user(), "chào")
    assert hook.post(body).status_code == 404
    assert hook.env.client.get("/webhooks/messenger").status_code == 404
