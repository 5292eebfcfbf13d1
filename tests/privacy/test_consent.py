"""Consent is written in the transaction of the turn that creates the conversation
(never a conversation without its consent record, nor a record without its
conversation); one notice version throughout; codes used in a channel stay with
their owner."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from assistant.conversations import Consent
from assistant.db import Conversation
from assistant.db.models import utcnow
from assistant.privacy.models import ConsentRecord
from assistant.privacy.service import CodeInvalid, add_consent
from assistant.prompts import PROMPTS_DIR, default_prompts
from assistant.settings import Settings
from assistant.text import fold_accents
from tests.privacy.conftest import add_conversation

pytestmark = pytest.mark.integration

FIRST = {"text": "Làm sao để chặn người lạ nhắn tin?", "audience": "child", "consent": {"notice_version": "1"}}


def _counts(services: Any) -> tuple[int, int]:
    with services.db.session() as s:
        return (
            int(s.scalar(sa.select(sa.func.count()).select_from(Conversation)) or 0),
            int(s.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) or 0),
        )


@pytest.mark.parametrize("where", ["consent", "turn"])
def test_a_crash_leaves_neither_the_conversation_nor_its_consent(
    app: Any, services: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from fastapi.testclient import TestClient

    import assistant.conversations

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the process dies mid-turn")

    if where == "consent":  # writing the consent record fails
        monkeypatch.setattr(assistant.conversations, "add_consent", crash)
    else:  # a later step of the same turn fails (e.g. opening a tip report)
        monkeypatch.setattr(services.chat, "hooks", [*services.chat.hooks, crash])
    before = _counts(services)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/v1/chat", json=FIRST).status_code == 500
    assert _counts(services) == before


def test_the_consent_is_part_of_the_turns_own_transaction(
    client: Any, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def look(session: Any, conv: Any, *_args: Any) -> None:  # runs inside the write transaction
        seen.append(len(session.scalars(
            sa.select(ConsentRecord).where(ConsentRecord.conversation_id == conv.id)
        ).all()))

    monkeypatch.setattr(services.chat, "hooks", [*services.chat.hooks, look])
    r = client.post("/api/v1/chat", json=FIRST)
    assert r.status_code == 200 and seen == [1]
    cid = r.json()["conversation_id"]
    again = client.post("/api/v1/chat", json={**FIRST, "conversation_id": cid, "text": "cảm ơn"})
    assert again.status_code == 200 and seen == [1, 1]  # one record per conversation


def test_a_turn_records_a_given_consent_once_with_its_own_time(services: Any) -> None:
    accepted = utcnow() - timedelta(days=2)
    result = services.chat.handle(
        "chào bạn", "child", channel="zalo", user_pseudonym="p" * 64, consent=Consent("1", accepted)
    )
    services.chat.handle(
        "cảm ơn", "child", channel="zalo", conversation_id=result.conversation_id, user_pseudonym="p" * 64,
        consent=Consent("1", accepted),
    )
    with services.db.session() as s:
        [row] = s.scalars(
            sa.select(ConsentRecord).where(ConsentRecord.conversation_id == result.conversation_id)
        ).all()
        assert (row.channel, row.notice, row.notice_version) == ("zalo", "privacy-notice-child", "1")
        given = row.given_at if row.given_at.tzinfo else row.given_at.replace(tzinfo=accepted.tzinfo)
        assert given == accepted
        assert add_consent(s, result.conversation_id, "zalo", "child", "1", once=True) is None
        assert add_consent(s, result.conversation_id, "zalo", "child", "2", once=True) is not None


def test_a_code_used_in_a_channel_must_be_the_users_own(services: Any) -> None:
    cid = add_conversation(services.db, "tin nhắn")
    code, _ = services.privacy.issue_code(cid)
    with pytest.raises(CodeInvalid):
        services.privacy.delete_by_code(code, owner=("zalo", "someone-else"))
    data = services.privacy.export_by_code(code)  # not spent by the refused attempt
    assert data["conversation_id"] == cid


def _front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text.split("---")[1])
    assert isinstance(data, dict)
    return data


def test_the_widget_and_the_channels_show_one_notice_version() -> None:
    version = Settings(_env_file=None).widget.notice_version  # type: ignore[call-arg]
    for audience in ("child", "parent"):
        notice = _front_matter(PROMPTS_DIR / "privacy" / f"notice.{audience}.vi.md")
        assert str(notice["version"]) == version, "bump settings.widget.notice_version with the notice"
        text = default_prompts().text("privacy_notice", audience)
        folded = fold_accents(text).lower()
        assert "111" in text and "ma du lieu" in folded and "dong y" in folded and "30 ngay" in folded
        assert "giu bi mat" not in folded


def test_channel_consent_and_owned_codes_on_both_databases(database_url: str) -> None:
    from assistant.channels.store import ChannelStore
    from assistant.privacy.service import PrivacyService
    from assistant.settings import PrivacySettings
    from tests.privacy.conftest import open_db

    db = open_db(database_url)
    try:
        store, me = ChannelStore(db), "p" * 64
        uid = store.ensure_user("zalo", me, "1234567890")
        cid = add_conversation(db, "chào bạn")
        with db.session() as s:
            conv = s.get_one(Conversation, cid)
            conv.channel, conv.user_pseudonym = "zalo", me
        store.set_conversation(uid, cid)
        store.mark_notice_shown(uid, "1", utcnow())
        user = store.user("zalo", me)
        assert user is not None and user.awaiting_consent("1") and not user.consented("1")
        at = utcnow()
        user = store.record_consent(uid, "1", "child", at)
        assert user.consented("1") and not user.awaiting_consent("1") and not user.consented("2")
        store.record_consent(uid, "1", "child", at)  # again: still one record per version
        with db.session() as s:
            [row] = s.scalars(sa.select(ConsentRecord).where(ConsentRecord.conversation_id == cid)).all()
            assert (row.channel, row.notice_version) == ("zalo", "1")

        privacy = PrivacyService(db, PrivacySettings())
        code, _ = privacy.issue_code(cid)
        with pytest.raises(CodeInvalid):
            privacy.delete_by_code(code, owner=("zalo", "q" * 64))
        with pytest.raises(CodeInvalid):
            privacy.export_by_code(code, owner=("messenger", me))
        assert privacy.delete_by_code(code, owner=("zalo", me))["deleted"] is True
        user = store.user("zalo", me)
        assert user is not None and user.conversation_id is None and user.consented("1")
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 0
    finally:
        db.dispose()
