"""Privacy on Zalo and Messenger: the notice and the consent it records, the
vital-interest exception for disclosures, and the one-time code commands
("mã dữ liệu", "xem <mã>", "xoá <mã>"), end to end through the signed webhooks."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.channels.models import ChannelEvent, ChannelUser, as_utc
from assistant.channels.rights import CONSENT_PAYLOAD, PrivacyCommand, consent_answer, privacy_command
from assistant.db import Conversation, Message
from assistant.db.models import utcnow
from assistant.privacy.models import ConsentRecord
from assistant.prompts import default_prompts
from escalation.models import AuditEntry, TipReportRow
from tests.channels.conftest import ChannelEnv, new_user
from tests.channels.helpers import Hook

pytestmark = pytest.mark.integration

CODE = re.compile(r"\b([2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5})\b")
DISCLOSURE = "chú hàng xóm sờ vào chỗ kín của em, em sợ lắm"


@pytest.fixture(params=["zalo", "messenger"])
def hook(request: pytest.FixtureRequest, channel_env: ChannelEnv) -> Hook:
    return Hook(request.param, channel_env)


# -- helpers --------------------------------------------------------------------------------
def pseudonym(hook: Hook, user: str) -> str:
    return str(hook.env.channels.pseudonym(hook.name, user))


def send(hook: Hook, user: str, text: str) -> list[str]:
    """Post a signed text message, wait for the worker; the texts sent back for it."""
    before = len(hook.texts(user))
    assert hook.post(hook.text(user, text)).status_code == 200
    hook.env.wait()
    return hook.texts(user)[before:]


def tap(hook: Hook, user: str, title: str, payload: str) -> list[str]:
    before = len(hook.texts(user))
    hook.post(hook.audience_answer(user, title, payload))
    hook.env.wait()
    return hook.texts(user)[before:]


def channel_user(hook: Hook, user: str) -> ChannelUser:
    with hook.env.services.db.session() as s:
        row = s.scalars(
            sa.select(ChannelUser).where(
                ChannelUser.channel == hook.name, ChannelUser.user_pseudonym == pseudonym(hook, user)
            )
        ).one()
        s.expunge(row)
        assert isinstance(row, ChannelUser)
        return row


def consents(hook: Hook, conversation_id: str) -> list[ConsentRecord]:
    with hook.env.services.db.session() as s:
        rows = s.scalars(
            sa.select(ConsentRecord).where(ConsentRecord.conversation_id == conversation_id).order_by(ConsentRecord.id)
        ).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def conversations_of(hook: Hook, user: str) -> list[str]:
    with hook.env.services.db.session() as s:
        return list(
            s.scalars(
                sa.select(Conversation.id)
                .where(Conversation.channel == hook.name, Conversation.user_pseudonym == pseudonym(hook, user))
                .order_by(Conversation.created_at)
            )
        )


def user_texts(hook: Hook, conversation_id: str) -> list[str]:
    with hook.env.services.db.session() as s:
        return list(
            s.scalars(
                sa.select(Message.text)
                .where(Message.conversation_id == conversation_id, Message.role == "user")
                .order_by(Message.id)
            )
        )


def consented_user(hook: Hook, user: str, at: datetime | None = None) -> int:
    store = hook.env.channels.store
    user_id = int(store.ensure_user(hook.name, pseudonym(hook, user), user))
    store.set_audience(user_id, "child")
    store.record_consent(user_id, hook.env.channels.notice_version, "child", at or utcnow())
    return user_id


def notice_and_question() -> str:
    prompts = default_prompts()
    return prompts.text("privacy_notice", "child") + "\n\n" + prompts.text("ask_audience", "child")


# -- the notice and consent -------------------------------------------------------------------
def test_first_contact_gets_the_notice_with_the_reply_and_a_button_records_consent(hook: Hook) -> None:
    user = new_user()
    reply, notice = send(hook, user, "làm sao để đặt mật khẩu mạnh?")
    assert notice == notice_and_question()  # one message: the notice, the question, the buttons
    assert "111" in notice and "mã dữ liệu" in notice
    [conversation_id] = conversations_of(hook, user)
    assert consents(hook, conversation_id) == []  # shown, not yet accepted
    row = channel_user(hook, user)
    assert row.notice_version == "1" and row.notice_shown_at is not None and row.consent_at is None

    [greeting] = tap(hook, user, "Em là học sinh", "AUDIENCE_CHILD")
    assert greeting == default_prompts().text("greeting", "child", pseudonym(hook, user))
    row = channel_user(hook, user)
    assert (row.consent_version, row.audience) == ("1", "child") and row.consent_at is not None
    [record] = consents(hook, conversation_id)  # recorded on the conversation the user is in
    assert (record.notice, record.notice_version, record.channel, record.audience) == (
        "privacy-notice-child", "1", hook.name, "child"
    )
    assert as_utc(record.given_at) == as_utc(row.consent_at)

    send(hook, user, "cảm ơn bạn")  # later turns add no second record
    assert len(consents(hook, conversation_id)) == 1


def test_writing_on_after_the_notice_is_the_acceptance_it_announces(hook: Hook) -> None:
    user = new_user()
    send(hook, user, "chào bạn")
    [conversation_id] = conversations_of(hook, user)
    assert consents(hook, conversation_id) == []
    [reply] = send(hook, user, "người lạ kết bạn thì làm gì?")  # answered as usual, no second notice
    assert reply and "Trước khi trò chuyện" not in reply
    [record] = consents(hook, conversation_id)
    assert (record.notice, record.notice_version, record.channel) == ("privacy-notice-child", "1", hook.name)
    assert user_texts(hook, conversation_id) == ["chào bạn", "người lạ kết bạn thì làm gì?"]


def test_a_parent_choosing_their_button_accepts_the_parent_notice(hook: Hook) -> None:
    user = new_user()
    send(hook, user, "chào bạn")
    tap(hook, user, "Tôi là phụ huynh", "AUDIENCE_PARENT")
    [conversation_id] = conversations_of(hook, user)
    [record] = consents(hook, conversation_id)
    assert (record.notice, record.audience) == ("privacy-notice-parent", "parent")


def test_a_disclosure_before_consent_is_escalated_and_answered_first(hook: Hook) -> None:
    """Vital interest: no notice, no question, no waiting for consent before the 111 reply."""
    user = new_user()
    [reply] = send(hook, user, DISCLOSURE)
    assert "111" in reply and "Trước khi trò chuyện" not in reply
    [conversation_id] = conversations_of(hook, user)
    with hook.env.services.db.session() as s:
        assert s.scalars(sa.select(TipReportRow).where(TipReportRow.conversation_id == conversation_id)).all()
        assert s.get_one(Conversation, conversation_id).risk_severity >= 3
    assert consents(hook, conversation_id) == []
    assert channel_user(hook, user).notice_shown_at is None  # the notice waits for a reply that is not one
    with hook.env.services.db.session() as s:  # the next day, a new conversation
        row = s.scalars(sa.select(ChannelUser).where(ChannelUser.user_pseudonym == pseudonym(hook, user))).one()
        row.last_user_message_at = utcnow() - timedelta(hours=25)
    reply, notice = send(hook, user, "làm sao để đặt mật khẩu mạnh?")
    assert notice == notice_and_question()
    send(hook, user, "em cảm ơn")
    first, second = conversations_of(hook, user)
    assert consents(hook, first) == [] and [r.notice_version for r in consents(hook, second)] == ["1"]


def test_the_users_consent_is_recorded_in_each_new_conversation(hook: Hook) -> None:
    user = new_user()
    accepted = utcnow() - timedelta(days=3)
    consented_user(hook, user, at=accepted)
    [first_reply] = send(hook, user, "chào bạn")  # consented already: no notice
    assert "Trước khi trò chuyện" not in first_reply
    with hook.env.services.db.session() as s:  # a day of silence: the next message starts a new conversation
        row = s.scalars(sa.select(ChannelUser).where(ChannelUser.user_pseudonym == pseudonym(hook, user))).one()
        row.last_user_message_at = utcnow() - timedelta(hours=25)
    send(hook, user, "làm sao chặn người lạ?")
    first, second = conversations_of(hook, user)
    for conversation_id in (first, second):
        [record] = consents(hook, conversation_id)
        assert as_utc(record.given_at) == accepted  # the time the user accepted, not the turn's


def test_a_new_notice_version_is_shown_once_and_accepted_with_its_button(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = new_user()
    consented_user(hook, user)
    send(hook, user, "chào bạn")
    monkeypatch.setattr(hook.env.channels, "notice_version", "2")
    reply, notice = send(hook, user, "cảm ơn bạn")
    assert notice == default_prompts().text("privacy_notice", "child")
    accept = hook.sent(user)[-1]["quick_replies"]
    assert accept == ([CONSENT_PAYLOAD] if hook.name == "messenger" else ["Đồng ý"])
    [thanks] = tap(hook, user, "Đồng ý", CONSENT_PAYLOAD)
    assert thanks == default_prompts().text("privacy_thanks", "child", pseudonym(hook, user))
    [conversation_id] = conversations_of(hook, user)
    assert [r.notice_version for r in consents(hook, conversation_id)] == ["1", "2"]
    assert channel_user(hook, user).consent_version == "2"
    assert user_texts(hook, conversation_id) == ["chào bạn", "cảm ơn bạn"]  # "Đồng ý" is not a chat turn


# -- the one-time code --------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["mã dữ liệu", "ma du lieu", "Xoá dữ liệu", "xoa du lieu", "xem dữ liệu!", "TAI DU LIEU"])
def test_asking_for_a_code_is_not_a_chat_turn(hook: Hook, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    user = new_user()
    consented_user(hook, user)
    send(hook, user, "chào bạn")
    [conversation_id] = conversations_of(hook, user)
    turns: list[Any] = []
    real = hook.env.channels.chat.continue_conversation
    monkeypatch.setattr(
        hook.env.channels.chat, "continue_conversation", lambda **kw: turns.append(kw) or real(**kw)
    )
    [answer] = send(hook, user, command)
    assert turns == []  # never risk-assessed nor stored as a message
    code = CODE.search(answer)
    assert code is not None and f"xoá {code[1]}" in answer and f"xem {code[1]}" in answer
    assert "Dữ liệu của em" in answer  # how to download the whole conversation on the web
    assert user_texts(hook, conversation_id) == ["chào bạn"]
    with hook.env.services.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Message).where(Message.text == command)) == 0
        events = s.scalars(sa.select(ChannelEvent).where(ChannelEvent.user_pseudonym == pseudonym(hook, user))).all()
        assert all(e.status == "done" and e.text is None for e in events)


def test_view_then_delete_with_codes_and_the_user_starts_afresh(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    user = new_user()
    consented_user(hook, user)
    send(hook, user, "chào bạn")
    send(hook, user, "làm sao đặt mật khẩu mạnh?")
    [conversation_id] = conversations_of(hook, user)
    with caplog.at_level(logging.DEBUG):
        [answer] = send(hook, user, "mã dữ liệu")
        code = CODE.search(answer)
        assert code is not None
        [summary] = send(hook, user, f"xem {code[1].lower()}")
    assert "2 tin nhắn của em" in summary and "2 tin trả lời" in summary and "phiên bản 1" in summary
    assert not any(code[1] in r.getMessage() or code[1] in str(r.__dict__) for r in caplog.records)
    [again] = send(hook, user, f"xoá {code[1]}")  # spent by "xem"
    assert again == default_prompts().text("privacy_code_invalid", "child", pseudonym(hook, user))

    [answer] = send(hook, user, "xoa du lieu")
    code = CODE.search(answer)
    assert code is not None
    [done] = send(hook, user, f"Xóa {code[1].replace('-', '')}")
    assert done == default_prompts().text("privacy_deleted", "child", pseudonym(hook, user))
    with hook.env.services.db.session() as s:
        assert s.get(Conversation, conversation_id) is None
        actions = s.scalars(
            sa.select(AuditEntry.action).where(AuditEntry.object_id == conversation_id).order_by(AuditEntry.id)
        ).all()
        assert list(actions) == ["ConversationExported", "ConversationDeleted"]
    assert channel_user(hook, user).conversation_id is None
    [nothing] = send(hook, user, "mã dữ liệu")
    assert nothing == default_prompts().text("privacy_nothing", "child", pseudonym(hook, user))
    send(hook, user, "chào bạn")  # a new conversation, with the user's consent carried over
    [fresh] = conversations_of(hook, user)
    assert fresh != conversation_id and len(consents(hook, fresh)) == 1


def test_a_conversation_with_a_report_is_not_deleted_and_the_child_is_told_why(hook: Hook) -> None:
    user = new_user()
    consented_user(hook, user)
    send(hook, user, DISCLOSURE)
    [conversation_id] = conversations_of(hook, user)
    [answer] = send(hook, user, "mã dữ liệu")
    code = CODE.search(answer)
    assert code is not None
    [refused] = send(hook, user, f"xoá {code[1]}")
    assert refused == default_prompts().text("privacy_legal_hold", "child", pseudonym(hook, user))
    assert "111" in refused
    with hook.env.services.db.session() as s:
        assert s.get(Conversation, conversation_id) is not None
        assert "ConversationDeletionRefused" in s.scalars(
            sa.select(AuditEntry.action).where(AuditEntry.object_id == conversation_id)
        ).all()


def test_a_code_works_only_for_its_own_channel_user(hook: Hook) -> None:
    owner, other = new_user(), new_user()
    consented_user(hook, owner)
    consented_user(hook, other)
    send(hook, owner, "chào bạn")
    send(hook, other, "chào bạn")
    [answer] = send(hook, owner, "mã dữ liệu")
    code = CODE.search(answer)
    assert code is not None
    [refused] = send(hook, other, f"xoá {code[1]}")
    assert refused == default_prompts().text("privacy_code_invalid", "child", pseudonym(hook, other))
    [conversation_id] = conversations_of(hook, owner)
    with hook.env.services.db.session() as s:
        assert s.get(Conversation, conversation_id) is not None
    [done] = send(hook, owner, f"xoá {code[1]}")  # not spent by the other user's attempt
    assert done == default_prompts().text("privacy_deleted", "child", pseudonym(hook, owner))


# -- recognising commands --------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mã dữ liệu", PrivacyCommand("code")),
        ("Ma du lieu", PrivacyCommand("code")),
        ("xoá dữ liệu của em", PrivacyCommand("code")),
        ("xóa dữ liệu", PrivacyCommand("code")),
        ("xem du lieu cua toi", PrivacyCommand("code")),
        ("tải dữ liệu.", PrivacyCommand("code")),
        ("xoá ABCDE-FGHJK", PrivacyCommand("delete", "ABCDE-FGHJK")),
        ("xoa abcdefghjk", PrivacyCommand("delete", "ABCDE-FGHJK")),
        ("Xóa dữ liệu: 23456 789AB", PrivacyCommand("delete", "23456-789AB")),
        ("“xoá ABCDE-FGHJK”", PrivacyCommand("delete", "ABCDE-FGHJK")),
        ("xem ABCDE-FGHJK", PrivacyCommand("export", "ABCDE-FGHJK")),
        ("tải về abcde-fghjk", PrivacyCommand("export", "ABCDE-FGHJK")),
        ("tai ABCDE-FGHJK", PrivacyCommand("export", "ABCDE-FGHJK")),
        # ordinary messages, disclosures among them, are never commands
        ("em muốn xoá ảnh bạn ấy gửi", None),
        ("chú ấy bảo em xoá dữ liệu đi không được kể", None),
        ("xem phim gì bây giờ", None),
        ("xoá ABCDE-FGHJK giúp em với, chú ấy dọa em", None),
        ("xoá ABCDE-FGHJI", None),  # I is not in the code alphabet
        ("dữ liệu", PrivacyCommand("code")),
        ("", None),
    ],
)
def test_privacy_commands_are_whole_messages(text: str, expected: PrivacyCommand | None) -> None:
    assert privacy_command(text) == expected


@pytest.mark.unit
def test_consent_answers() -> None:
    assert consent_answer("Đồng ý") and consent_answer("dong y") and consent_answer("", CONSENT_PAYLOAD)
    assert not consent_answer("em không đồng ý") and not consent_answer("đồng ý là bạn ấy đánh em")
