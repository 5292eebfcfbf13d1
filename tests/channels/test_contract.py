"""Contract tests every channel passes.

``ChannelContract``: the adapter alone (verify the raw body, parse, send).
``WebhookContract``: the whole path through the app - signed webhook, inbox,
background worker, pipeline, reply on the (fake) platform server.

Each platform's test class inherits them and supplies only a fixture.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.channels.base import (
    Channel,
    InboundMessage,
    MissingSignature,
    QuickReply,
    SignatureError,
)
from assistant.channels.fake import CollectingChannel
from assistant.channels.models import ChannelEvent, ChannelUser
from assistant.db import Conversation, Message
from assistant.db.models import utcnow
from assistant.prompts import default_prompts
from tests.channels.conftest import ChannelEnv, Scripted, new_user
from tests.channels.helpers import Hook

pytestmark = pytest.mark.integration


# -- the adapter contract ------------------------------------------------------------
@dataclass
class Harness:
    hook: Hook

    @property
    def channel(self) -> Channel:
        channel: Channel | None = self.hook.env.channels.get(self.hook.name)
        assert channel is not None
        return channel


class ChannelContract:
    @pytest.fixture()
    def harness(self) -> Harness:  # pragma: no cover - supplied by each platform
        raise NotImplementedError

    def test_is_a_channel(self, harness: Harness) -> None:
        assert isinstance(harness.channel, Channel)
        assert harness.channel.name == harness.hook.name

    def test_a_signed_text_is_parsed(self, harness: Harness) -> None:
        user = new_user()
        body = harness.hook.text(user, "chào bạn", mid="mid-contract-1")
        harness.channel.verify(harness.hook.sign(body), body)
        [message] = harness.channel.parse(body)
        assert isinstance(message, InboundMessage)
        assert (message.kind, message.sender_id, message.text) == ("text", user, "chào bạn")
        assert message.platform_message_id == "mid-contract-1"
        assert message.event_key == "mid-contract-1"

    def test_missing_signature_is_refused(self, harness: Harness) -> None:
        body = harness.hook.text(new_user(), "chào")
        with pytest.raises(MissingSignature):
            harness.channel.verify({"content-type": "application/json"}, body)

    def test_wrong_signature_is_refused(self, harness: Harness) -> None:
        body = harness.hook.text(new_user(), "chào")
        headers = harness.hook.sign(body)
        headers[harness.hook.signature_header] = headers[harness.hook.signature_header][:-4] + "0000"
        with pytest.raises(SignatureError):
            harness.channel.verify(headers, body)

    def test_signature_covers_the_raw_body(self, harness: Harness) -> None:
        body = harness.hook.text(new_user(), "chào")
        headers = harness.hook.sign(body)
        tampered = body.replace("chào".encode(), b"chao")
        with pytest.raises(SignatureError):
            harness.channel.verify(headers, tampered)

    def test_an_attachment_is_described_by_type_only(self, harness: Harness) -> None:
        body = harness.hook.image(new_user())
        harness.channel.verify(harness.hook.sign(body), body)
        [message] = harness.channel.parse(body)
        assert message.kind == "attachment" and "image" in message.attachment_types
        assert "http" not in repr(message)

    def test_send_text_reaches_the_platform(self, harness: Harness) -> None:
        user = new_user()
        sent = harness.channel.send_text(user, "Xin chào từ bài kiểm tra")
        assert sent.platform_message_id
        assert harness.hook.texts(user) == ["Xin chào từ bài kiểm tra"]

    def test_quick_replies_are_sent_as_options(self, harness: Harness) -> None:
        user = new_user()
        options = [QuickReply("Em là học sinh", "AUDIENCE_CHILD"), QuickReply("Tôi là phụ huynh", "AUDIENCE_PARENT")]
        harness.channel.send_quick_replies(user, "Em là học sinh hay phụ huynh?", options)
        [message] = harness.hook.sent(user)
        assert message["text"].startswith("Em là học sinh hay phụ huynh?")
        assert len(message["quick_replies"]) == 2


# -- the end-to-end contract -----------------------------------------------------------
def _count(services: Any, model: Any, *where: Any) -> int:
    with services.db.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


def _pseudonym(env: ChannelEnv, channel: str, user: str) -> str:
    return str(env.channels.pseudonym(channel, user))


def _known_user(hook: Hook, user: str, audience: str = "child") -> None:
    """A user who already answered the audience question and accepted the privacy notice."""
    store = hook.env.channels.store
    user_id = store.ensure_user(hook.name, _pseudonym(hook.env, hook.name, user), user)
    store.set_audience(user_id, audience)
    store.record_consent(user_id, hook.env.channels.notice_version, audience, utcnow())


def tip_report_for(services: Any, conversation_id: str) -> Any:
    """The tip report opened for the conversation (``None`` if the escalation part is absent)."""
    try:
        from escalation.models import TipReportRow
    except ImportError:  # pragma: no cover - before the escalation part existed
        return None
    with services.db.session() as s:
        return s.scalars(sa.select(TipReportRow).where(TipReportRow.conversation_id == conversation_id)).all()


class WebhookContract:
    @pytest.fixture()
    def hook(self) -> Hook:  # pragma: no cover - supplied by each platform
        raise NotImplementedError

    def test_signed_text_produces_exactly_one_reply(self, hook: Hook) -> None:
        user = new_user()
        _known_user(hook, user)
        body = hook.text(user, "làm sao để đặt mật khẩu mạnh?")
        response = hook.post(body)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
        hook.env.wait()
        [sent] = hook.texts(user)
        pseudonym = _pseudonym(hook.env, hook.name, user)
        with hook.env.services.db.session() as s:
            rows = s.execute(
                sa.select(Message.role, Message.text, Message.user_pseudonym)
                .join(Conversation)
                .where(Conversation.user_pseudonym == pseudonym)
                .order_by(Message.id)
            ).all()
        assert [r.role for r in rows] == ["user", "assistant"]
        assert rows[1].text == sent
        assert rows[0].user_pseudonym == pseudonym and user not in pseudonym

    def test_missing_signature_is_rejected_and_logged(self, hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
        user = new_user()
        body = hook.text(user, "chào")
        with caplog.at_level(logging.WARNING, logger="assistant.channels.routes"):
            response = hook.post(body, headers={"content-type": "application/json"})
        assert response.status_code == 401
        assert any("webhook rejected" in r.getMessage() and hook.name in r.getMessage() for r in caplog.records)
        hook.env.wait()
        assert _count(hook.env.services, ChannelEvent, ChannelEvent.user_pseudonym == _pseudonym(hook.env, hook.name, user)) == 0
        assert hook.texts(user) == []

    def test_bad_signature_is_rejected_and_logged(self, hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
        user = new_user()
        body = hook.text(user, "chào")
        headers = hook.sign(hook.text(user, "một tin khác"))  # a real signature, of another body
        with caplog.at_level(logging.WARNING, logger="assistant.channels.routes"):
            response = hook.post(body, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "bad_signature"
        assert any("webhook rejected" in r.getMessage() for r in caplog.records)
        hook.env.wait()
        assert hook.texts(user) == []

    def test_replayed_event_is_ignored(self, hook: Hook) -> None:
        user = new_user()
        _known_user(hook, user)
        body = hook.text(user, "bạn là ai?")
        assert hook.post(body).json()["accepted"] == 1
        assert hook.post(body).json() == {"status": "ok", "accepted": 0, "duplicates": 1}
        hook.env.wait()
        assert hook.post(body).json()["duplicates"] == 1  # and again after processing
        hook.env.wait()
        assert len(hook.texts(user)) == 1
        pseudonym = _pseudonym(hook.env, hook.name, user)
        assert _count(hook.env.services, Message, Message.user_pseudonym == pseudonym) == 1

    def test_disclosure_opens_a_tip_report_with_channel_and_platform_ids(self, hook: Hook) -> None:
        user = new_user()
        _known_user(hook, user)
        mid = f"mid-disclosure-{uuid.uuid4().hex[:12]}"
        body = hook.text(user, "chú hàng xóm sờ vào chỗ kín của em, em sợ lắm", mid=mid)
        assert hook.post(body).status_code == 200
        hook.post(body)  # the platform retries: still one message, one report
        hook.env.wait()
        [sent] = hook.texts(user)
        assert "111" in sent
        pseudonym = _pseudonym(hook.env, hook.name, user)
        with hook.env.services.db.session() as s:
            msg = s.scalars(sa.select(Message).where(Message.channel == hook.name, Message.platform_message_id == mid)).one()
            conv = s.get_one(Conversation, msg.conversation_id)
            assert (conv.channel, conv.user_pseudonym, msg.user_pseudonym) == (hook.name, pseudonym, pseudonym)
            assert conv.risk_severity >= 3 and (msg.severity or 0) >= 3
            conversation_id = conv.id
        reports = tip_report_for(hook.env.services, conversation_id)
        if reports is not None:  # the escalation hook is wired: exactly one report, on this channel
            assert len(reports) == 1
            report = reports[0]
            assert (report.channel, report.conversation_id) == (hook.name, conversation_id)
            # Its evidence points at the stored message, which carries the platform message id;
            # its conversation carries the user's pseudonym (never the raw platform id).
            evidence = [item["message_id"] for item in report.content["evidence"]["items"]]
            with hook.env.services.db.session() as s:
                ids = set(s.scalars(sa.select(Message.platform_message_id).where(Message.id.in_(evidence))))
            assert mid in ids
            assert user not in str(report.content)

    def test_an_attachment_is_not_stored(self, hook: Hook) -> None:
        user = new_user()
        _known_user(hook, user)
        mid = f"mid-image-{uuid.uuid4().hex[:12]}"
        assert hook.post(hook.image(user, mid=mid)).status_code == 200
        hook.env.wait()
        [sent] = hook.texts(user)
        assert sent == default_prompts().text("attachment_note", "child", _pseudonym(hook.env, hook.name, user))
        services = hook.env.services
        assert _count(services, Message, Message.platform_message_id == mid) == 0
        with services.db.session() as s:
            event = s.scalars(sa.select(ChannelEvent).where(ChannelEvent.event_key == mid)).one()
            assert event.status == "done" and event.text is None and event.payload is None
            for (text,) in s.execute(sa.select(Message.text).where(Message.user_pseudonym == event.user_pseudonym)):
                assert "http" not in text

    def test_audience_is_asked_once_and_remembered(self, hook: Hook) -> None:
        user = new_user()
        hook.post(hook.text(user, "chào bạn"))
        hook.env.wait()
        first = hook.sent(user)
        assert len(first) == 2  # the reply, then the question with its quick replies
        question = default_prompts().text("ask_audience", "child")
        assert question in first[1]["text"] and len(first[1]["quick_replies"]) == 2
        assert first[1]["text"].startswith(default_prompts().text("privacy_notice", "child"))  # with the notice
        hook.post(hook.audience_answer(user, "Tôi là phụ huynh", "AUDIENCE_PARENT"))
        hook.env.wait()
        assert hook.texts(user)[2] == default_prompts().text("greeting", "parent", _pseudonym(hook.env, hook.name, user))
        hook.post(hook.text(user, "cảm ơn nhé"))
        hook.env.wait()
        texts = hook.texts(user)
        assert len(texts) == 4 and question not in texts[3]
        with hook.env.services.db.session() as s:
            row = s.scalars(
                sa.select(ChannelUser).where(ChannelUser.user_pseudonym == _pseudonym(hook.env, hook.name, user))
            ).one()
            assert row.audience == "parent"
            last = s.scalars(
                sa.select(Message).where(Message.conversation_id == row.conversation_id).order_by(Message.id.desc())
            ).first()
            assert last is not None and last.audience == "parent"

    def test_a_disclosure_is_answered_before_any_question(self, hook: Hook) -> None:
        user = new_user()
        hook.post(hook.text(user, "bố em say rượu đánh em chảy máu, em không dám về nhà"))
        hook.env.wait()
        [sent] = hook.texts(user)  # no audience question after a disclosure
        assert "111" in sent

    def test_the_webhook_is_acknowledged_before_the_reply_is_sent(self, hook: Hook) -> None:
        user = new_user()
        _known_user(hook, user)
        if hook.name == "messenger":  # the platform takes a second to accept the reply
            hook.env.graph.script(Scripted(200, {"recipient_id": user, "message_id": "m_slow"}, delay=1.0))
        elif hook.name == "zalo":
            hook.env.zalo.script(Scripted(200, {"error": 0, "data": {"message_id": "z_slow"}}, delay=1.0))
        started = time.perf_counter()
        response = hook.post(hook.text(user, "cảm ơn bạn"))
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and elapsed < 0.8, elapsed  # Zalo allows 2 s
        hook.env.wait()
        assert len(hook.sent(user)) == 1


    def test_a_message_that_cannot_be_answered_still_gets_111(
        self, hook: Hook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        user = new_user()
        _known_user(hook, user)

        def broken(**_kwargs: Any) -> Any:
            raise RuntimeError("the index is unavailable")

        monkeypatch.setattr(hook.env.channels.chat, "continue_conversation", broken)
        hook.env.channels.retry_delays = (0.01, 0.01)
        with caplog.at_level(logging.ERROR, logger="assistant.channels.service"):
            hook.post(hook.text(user, "cứu em với"))
            hook.env.wait()
        [sent] = hook.texts(user)
        assert sent == default_prompts().text("no_answer", "child", _pseudonym(hook.env, hook.name, user))
        assert "111" in sent
        assert any("failed (attempt 3 of 3)" in r.getMessage() for r in caplog.records)
        with hook.env.services.db.session() as s:
            event = s.scalars(
                sa.select(ChannelEvent).where(ChannelEvent.user_pseudonym == _pseudonym(hook.env, hook.name, user))
            ).one()
            assert event.status == "failed" and event.text == "cứu em với"  # kept for an operator


# -- the platforms -------------------------------------------------------------------------
class TestMessenger(ChannelContract, WebhookContract):
    @pytest.fixture()
    def hook(self, channel_env: ChannelEnv) -> Hook:
        return Hook("messenger", channel_env)

    @pytest.fixture()
    def harness(self, hook: Hook) -> Harness:
        return Harness(hook)


class TestZalo(ChannelContract, WebhookContract):
    @pytest.fixture()
    def hook(self, channel_env: ChannelEnv) -> Hook:
        return Hook("zalo", channel_env)

    @pytest.fixture()
    def harness(self, hook: Hook) -> Harness:
        return Harness(hook)


class TestCollectingChannel(ChannelContract, WebhookContract):
    """The in-memory fake honours the same contract (so tests elsewhere can rely on it)."""

    @pytest.fixture()
    def hook(self, channel_env: ChannelEnv) -> Hook:
        channel_env.channels.channels["fake"] = CollectingChannel()
        return Hook("fake", channel_env)

    @pytest.fixture()
    def harness(self, hook: Hook) -> Harness:
        return Harness(hook)
