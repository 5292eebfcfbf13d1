"""Retention: exactly the expired conversations and reports go, each purge audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from assistant.db import Conversation, Message
from assistant.privacy.service import PrivacyService
from assistant.settings import PrivacySettings
from escalation.models import AuditEntry, ReportNote, TipReportRow
from tests.privacy.conftest import KEY_1, add_conversation, add_report, open_db

pytestmark = pytest.mark.integration


def test_purge_removes_exactly_what_it_should(database_url: str) -> None:
    db = open_db(database_url, KEY_1)
    try:
        old_plain = add_conversation(db, age_days=31)
        recent_plain = add_conversation(db, age_days=29)
        old_open_report = add_conversation(db, age_days=400)
        add_report(db, old_open_report)
        hold_over = add_conversation(db, age_days=3000)
        gone_report = add_report(db, hold_over, status="closed", closed_days_ago=2000)
        hold_running = add_conversation(db, age_days=400)
        add_report(db, hold_running, status="closed", closed_days_ago=300)
        service = PrivacyService(db, PrivacySettings(conversation_retention_days=30, report_legal_hold_days=1825))

        dry = service.run_retention(dry_run=True)
        assert sorted(dry.conversations) == sorted([old_plain, hold_over]) and dry.reports == [gone_report]
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 5

        report = service.run_retention()
        assert report.messages == 4
        with db.session() as s:
            left = set(s.scalars(sa.select(Conversation.id)).all())
            assert left == {recent_plain, old_open_report, hold_running}
            assert set(s.scalars(sa.select(Message.conversation_id)).all()) == left
            assert len(s.scalars(sa.select(TipReportRow.id)).all()) == 2
            assert len(s.scalars(sa.select(ReportNote.id)).all()) == 2
            audit = s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
            actions = sorted((a.action, a.object_id) for a in audit)
            assert actions == sorted([("ConversationPurged", old_plain), ("ConversationPurged", hold_over),
                                      ("TipReportPurged", gone_report)])
            assert all(a.actor == "system" for a in audit)
        assert service.run_retention().conversations == []
    finally:
        db.dispose()
