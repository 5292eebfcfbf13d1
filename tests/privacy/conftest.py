"""Helpers: databases with explicit data keys, and rows of every encrypted table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ulid import ULID

from assistant.crypto import Keyring, generate_key
from assistant.db import Conversation, Database, Message
from assistant.db.models import utcnow

KEY_1 = generate_key()
KEY_2 = generate_key()


def open_db(url: str, *keys: str) -> Database:
    db = Database(url, keyring=Keyring(list(keys) or [KEY_1]))
    db.upgrade()
    return db


def add_conversation(db: Database, text: str = "tin nhắn", age_days: float = 0, n: int = 2) -> str:
    at = utcnow() - timedelta(days=age_days)
    with db.session() as s:
        conv = Conversation(channel="web", audience="child", risk_severity=0, risk_state={},
                            needs_followup=False, created_at=at, updated_at=at)
        s.add(conv)
        s.flush()
        for i in range(n):
            s.add(Message(conversation_id=conv.id, role="user" if i % 2 == 0 else "assistant",
                          channel="web", audience="child", text=f"{text} {i}", created_at=at))
        return conv.id


def add_report(db: Database, conversation_id: str, status: str = "pending_review",
               closed_days_ago: float | None = None, **content: Any) -> str:
    from escalation.models import ReportNote, TipReportRow

    closed_at: datetime | None = None
    if closed_days_ago is not None:
        closed_at = utcnow() - timedelta(days=closed_days_ago)
    rid = str(ULID())
    with db.session() as s:
        s.add(TipReportRow(
            id=rid, conversation_id=conversation_id,
            open_conversation_id=None if closed_at else conversation_id,
            status=status, schema_version="1", channel="web", severity=3, primary_category="grooming",
            content={"incident": {"description": "Một người lạ tên Nguyễn Văn Tư dụ dỗ em"}, **content},
            first_disclosure_at=utcnow(), closed_at=closed_at,
        ))
        s.flush()
        s.add(ReportNote(report_id=rid, author="counselor1", text="Đã gọi cho mẹ em ở số 0912345678"))
    return rid
