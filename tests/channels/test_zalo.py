"""Zalo OA against a local fake OA API: token expiry and rotation, the timestamp
tolerance, follow/unfollow, replies quoting the user's message, the free-reply
quota rule (the 111 details first, a disclosure never dropped), 429 and 5xx."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from assistant.channels.metrics import ChannelMetrics
from assistant.channels.models import ChannelCredential, ChannelEvent, ChannelUser
from assistant.channels.service import zalo_quota_plan
from assistant.channels.simulate import zalo_body
from assistant.channels.zalo import ZaloTokenStore
from assistant.db.models import utcnow
from assistant.prompts import default_prompts
from tests.channels.conftest import ZALO_APP_ID, ChannelEnv, Scripted, new_user
from tests.channels.helpers import Hook

pytestmark = pytest.mark.integration


@pytest.fixture()
def hook(channel_env: ChannelEnv) -> Hook:
    return Hook("zalo", channel_env)


def known(hook: Hook, user: str, audience: str = "child") -> int:
    store = hook.env.channels.store
    user_id = store.ensure_user("zalo", hook.env.channels.pseudonym("zalo", user), user)
    store.set_audience(user_id, audience)
    store.record_consent(user_id, hook.env.channels.notice_version, audience, utcnow())  # the notice accepted
    return int(user_id)


def row_of(hook: Hook, user: str) -> ChannelUser:
    with hook.env.services.db.session() as s:
        row = s.scalars(
            sa.select(ChannelUser).where(
                ChannelUser.channel == "zalo", ChannelUser.user_pseudonym == hook.env.channels.pseudonym("zalo", user)
            )
        ).one()
        s.expunge(row)
        assert isinstance(row, ChannelUser)
        return row


def credential(hook: Hook) -> tuple[str, str]:
    with hook.env.services.db.session() as s:
        row = s.get_one(ChannelCredential, "zalo")
        return row.access_token, row.refresh_token


def metric(env: ChannelEnv, name: str, **labels: str) -> float:
    return env.services.metrics.registry.get_sample_value(name, labels) or 0.0


# -- tokens ------------------------------------------------------------------------------
def test_an_expired_access_token_is_refreshed_and_the_reply_delivered(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "chào bạn"))
    hook.env.wait()
    assert hook.env.zalo.refreshes == 0 and len(hook.sent(user)) == 1
    hook.env.zalo.expire_access_token()  # 25 hours later
    hook.post(hook.text(user, "cảm ơn bạn"))
    hook.env.wait()
    assert hook.env.zalo.refreshes == 1 and len(hook.sent(user)) == 2
    assert credential(hook) == ("zalo-access-token-2", "zalo-refresh-token-2")  # the rotated pair is kept
    hook.post(hook.text(user, "tạm biệt"))
    hook.env.wait()
    assert hook.env.zalo.refreshes == 1 and len(hook.sent(user)) == 3
    assert metric(hook.env, "assistant_channel_token_refreshes_total", platform="zalo", outcome="ok") == 1


def test_a_restarted_process_uses_the_rotated_refresh_token(hook: Hook) -> None:
    channel: Any = hook.env.channels.get("zalo")
    channel.tokens.refresh()
    assert credential(hook) == ("zalo-access-token-2", "zalo-refresh-token-2")
    # A new process: the refresh token in the settings was spent, the stored one is used.
    restarted = ZaloTokenStore(hook.env.services.db, channel.settings, channel.http, None)
    assert restarted.access_token() == "zalo-access-token-2"
    hook.env.zalo.expire_access_token()
    assert restarted.refresh(stale="zalo-access-token-2") == "zalo-access-token-3"
    assert hook.env.zalo.refreshes == 2


def test_a_token_refreshed_by_another_worker_is_reused(hook: Hook) -> None:
    channel: Any = hook.env.channels.get("zalo")
    first = channel.tokens.refresh(stale="zalo-access-token-1")
    again = channel.tokens.refresh(stale="zalo-access-token-1")  # a second worker saw the old token fail
    assert first == again == "zalo-access-token-2" and hook.env.zalo.refreshes == 1


def test_a_new_refresh_token_in_the_settings_replaces_the_stored_one(hook: Hook) -> None:
    channel: Any = hook.env.channels.get("zalo")
    channel.tokens.refresh()
    hook.env.zalo.valid_refresh = "re-authorized-refresh"
    hook.env.zalo.expire_access_token()
    settings = channel.settings.model_copy(
        update={"refresh_token": SecretStr("re-authorized-refresh"), "access_token": SecretStr("")}
    )
    store = ZaloTokenStore(hook.env.services.db, settings, channel.http, None)
    assert store.access_token() == f"zalo-access-token-{hook.env.zalo.refreshes + 1}"


def test_a_refused_refresh_is_logged_and_counted(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    known(hook, user)
    hook.env.zalo.expire_access_token()
    hook.env.zalo.valid_refresh = "someone-else-spent-it"
    with caplog.at_level(logging.ERROR, logger="assistant.channels.zalo"):
        hook.post(hook.text(user, "chào"))
        hook.env.wait()
    assert hook.sent(user) == []
    assert any("refresh refused" in r.getMessage() for r in caplog.records)
    assert metric(hook.env, "assistant_channel_token_refreshes_total", platform="zalo", outcome="refused") == 1


# -- webhooks ----------------------------------------------------------------------------
def test_an_old_event_is_rejected_even_when_signed(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    a_day_ago = int((time.time() - 24 * 3600) * 1000)  # the tolerance is 12 hours
    body = zalo_body(ZALO_APP_ID, user, "chào", timestamp_ms=a_day_ago)
    with caplog.at_level(logging.WARNING, logger="assistant.channels.routes"):
        response = hook.post(body)
    assert response.status_code == 403
    assert any("outside the accepted tolerance" in r.getMessage() for r in caplog.records)


def test_a_retry_within_the_tolerance_is_accepted(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hours_ago = int((time.time() - 5 * 3600) * 1000)  # Zalo retries an undelivered event for hours
    assert hook.post(zalo_body(ZALO_APP_ID, user, "chào", timestamp_ms=hours_ago)).json()["accepted"] == 1
    hook.env.wait()


def test_replies_quote_the_users_message(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "chào bạn", mid="zmsg-quote-" + user))
    hook.env.wait()
    [sent] = hook.sent(user)
    assert sent["raw"]["recipient"] == {"message_id": "zmsg-quote-" + user}  # spends the free replies


def test_follow_asks_the_audience_and_unfollow_forgets_the_platform_id(hook: Hook) -> None:
    user = new_user()
    assert hook.post(zalo_body(ZALO_APP_ID, user, event="follow")).json()["accepted"] == 1
    hook.env.wait()
    [sent] = hook.sent(user)
    assert sent["raw"]["recipient"] == {"user_id": user}
    prompts = default_prompts()  # the privacy notice, then the question, in one message
    assert sent["text"] == prompts.text("privacy_notice", "child") + "\n\n" + prompts.text("ask_audience", "child")
    assert sent["quick_replies"] == ["Em là học sinh", "Tôi là phụ huynh"]
    assert row_of(hook, user).platform_user_id == user
    hook.post(zalo_body(ZALO_APP_ID, user, "Em là học sinh"))  # the button's text comes back
    hook.env.wait()
    assert row_of(hook, user).audience == "child"
    hook.post(zalo_body(ZALO_APP_ID, user, event="unfollow"))
    hook.env.wait()
    row = row_of(hook, user)
    assert row.platform_user_id is None and row.last_platform_message_id is None and row.audience == "child"


def test_an_image_with_a_caption_gets_the_note_and_the_caption_is_answered(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.mids[user].add("zimg-" + user)
    body = zalo_body(ZALO_APP_ID, user, "làm sao để chặn tin nhắn lạ?", msg_id="zimg-" + user, event="user_send_image")
    hook.post(body)
    hook.env.wait()
    note, reply = hook.texts(user)
    assert note == default_prompts().text("attachment_note", "child", hook.env.channels.pseudonym("zalo", user))
    assert reply != note


# -- the free-reply quota ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("used", "window_open", "disclosure", "plan"),
    [
        (0, True, False, "free"),
        (6, True, False, "free"),
        (7, True, False, "notice_then_hold"),  # the last free reply carries the 111 details
        (7, True, True, "free"),  # ... unless it is a disclosure reply (it names 111 itself)
        (8, True, False, "hold"),
        (8, True, True, "paid"),  # a disclosure reply is never dropped
        (0, False, False, "hold"),  # 48 hours after the user's message nothing is free
        (0, False, True, "paid"),
    ],
)
def test_quota_plan(used: int, window_open: bool, disclosure: bool, plan: str) -> None:
    assert zalo_quota_plan(used, 8, window_open, disclosure) == plan


def test_when_the_quota_runs_out_the_111_details_go_first(hook: Hook) -> None:
    hook.env.channels.settings.zalo.free_reply_quota = 3
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "cảm ơn bạn"))  # one free reply used
    hook.env.wait()
    with hook.env.services.db.session() as s:
        conversation_id = s.get_one(ChannelUser, row_of(hook, user).id).conversation_id
    assert conversation_id is not None
    first = hook.env.channels.send_human_reply(conversation_id, "Cô là tư vấn viên, em cần gì cứ nhắn nhé.")
    assert first.sent  # the second free reply
    held = hook.env.channels.send_human_reply(conversation_id, "Em còn đó không?")
    assert (held.sent, held.reason) == (False, "human: quota")
    texts = hook.texts(user)
    assert texts[-1] == default_prompts().text("quota_111", "child", hook.env.channels.pseudonym("zalo", user))
    assert len(texts) == 3
    assert hook.env.channels.send_human_reply(conversation_id, "Em ơi?").sent is False
    assert len(hook.texts(user)) == 3
    assert row_of(hook, user).quota_notice_sent is True
    hook.post(hook.text(user, "em đây"))  # the user writes again: free replies restart
    hook.env.wait()
    assert len(hook.texts(user)) == 4 and row_of(hook, user).replies_since_user_message == 1


def test_a_disclosure_reply_is_sent_even_with_no_free_reply_left(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.channels.clock = lambda: utcnow() + timedelta(hours=49)  # processed after the free window
    hook.post(hook.text(user, "cảm ơn bạn"))
    hook.env.wait()
    assert hook.sent(user) == []  # an ordinary reply is held back
    hook.post(hook.text(user, "chú hàng xóm sờ vào chỗ kín của em"))
    hook.env.wait()
    [sent] = hook.sent(user)
    assert "111" in sent["text"]
    assert sent["raw"]["recipient"] == {"user_id": user}  # a paid message: it does not quote
    assert metric(hook.env, "assistant_channel_messages_sent_total", channel="zalo", kind="disclosure_paid") == 1


# -- 429, -32 and 5xx ----------------------------------------------------------------------------
def test_rate_limits_and_server_errors_are_retried(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.zalo.script(
        Scripted(429, {}, {"Retry-After": "0"}),
        Scripted(200, {"error": -32, "message": "Your application reached limit call api"}),
        Scripted(502, {}),
    )
    hook.post(hook.text(user, "chào bạn"))
    hook.env.wait()
    assert len(hook.sent(user)) == 1
    for reason in ("429", "api_rate_limit", "5xx"):
        assert metric(hook.env, "assistant_channel_http_retries_total", platform="zalo", reason=reason) == 1


def test_no_reply_window_is_logged_and_not_retried(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.env.zalo.script(Scripted(200, {"error": -230, "message": "User has not interacted with OA in past 7 days"}))
    hook.post(hook.text(user, "chào"))
    hook.env.wait()
    with hook.env.services.db.session() as s:
        event = s.scalars(
            sa.select(ChannelEvent).where(ChannelEvent.user_pseudonym == hook.env.channels.pseudonym("zalo", user))
        ).one()
        assert event.attempts == 1 and "WindowClosed" in (event.error or "")


def test_metrics_are_exposed(hook: Hook) -> None:
    user = new_user()
    known(hook, user)
    hook.post(hook.text(user, "chào"))
    hook.env.wait()
    text = hook.env.client.get("/metrics").text
    assert 'assistant_channel_webhooks_total{channel="zalo",outcome="accepted"} 1.0' in text
    assert "assistant_channel_http_seconds_bucket" in text
    assert isinstance(hook.env.channels.metrics, ChannelMetrics)
