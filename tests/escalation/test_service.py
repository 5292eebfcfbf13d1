"""The report service on a real database: the chat hook, one open report per conversation, alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from assistant.auth import PERMISSIONS, Principal
from assistant.db import Conversation, Database, Message
from assistant.db.models import utcnow
from assistant.risk.base import RiskAssessment
from escalation.models import AuditEntry, OutboxMessage, TipReportRow
from escalation.schemas import ReportedPersonUpdate, TipReport, TipReportUpdate
from escalation.service import EscalationService
from tests.escalation.conftest import Disclose, assessment

pytestmark = pytest.mark.integration


def outbox(db: Database, report_id: str | None = None) -> list[tuple[str, str, str]]:
    with db.session() as s:
        q = sa.select(OutboxMessage.kind, OutboxMessage.event_type, OutboxMessage.destination).order_by(OutboxMessage.id)
        if report_id:
            q = q.where(OutboxMessage.report_id == report_id)
        return [tuple(r) for r in s.execute(q).all()]  # type: ignore[misc]


def test_disclosure_opens_a_pending_report_with_facts_and_an_alert(
    disclose: Disclose, esc_db: Database, esc: EscalationService
) -> None:
    text = ("chú hàng xóm ở phường Biên Hòa sờ vào chỗ kín của em, em 12 tuổi, "
            "nó nhắn zalo số 0912 345 678, facebook.com/chu.hang.xom")
    _, report_id = disclose(text)
    assert report_id is not None and len(report_id) == 26
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None
        assert (row.status, row.severity, row.urgent, row.version) == ("pending_review", 3, False, 1)
        doc = esc.document(s, row)
    TipReport.model_validate(doc.model_dump(mode="json"))  # the delivered form is valid
    assert doc.incident.ward is not None and doc.incident.ward.name == "Phường Biên Hòa"
    assert doc.child.age == 12 and doc.meta.reporter_role == "child"
    assert doc.reported_person.phone_numbers == ["+84912345678"]
    assert doc.reported_person.relationship == "neighbour"
    assert doc.reported_person.profile_urls == ["https://facebook.com/chu.hang.xom"]
    assert len(doc.evidence.items) == 1 and doc.evidence.items[0].excerpt == text
    assert doc.handling.recipients == ["city_police", "hotline_111"]
    assert doc.child.pseudonym and doc.child.pseudonym not in text
    assert outbox(esc_db, report_id) == [("alert", "alert.report_created", "counselors")]
    print("checked: report fields, routing, evidence, one counselor alert")


def test_second_disclosure_in_the_conversation_appends(disclose: Disclose, esc_db: Database) -> None:
    conv, first = disclose("anh trên mạng bắt em gửi ảnh", assessment(3, "grooming"))
    _, second = disclose("giờ nó dọa tung ảnh của em, nick nó là hotboy_2k9", assessment(3, "sextortion"), conv)
    assert first == second
    with esc_db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(TipReportRow)) == 1
        row = s.get(TipReportRow, first)
        assert row is not None and row.version == 2
        assert row.categories == ["grooming", "sextortion"]
        assert [i["excerpt"][:6] for i in row.content["evidence"]["items"]] == ["anh tr", "giờ nó"]
        assert row.content["reported_person"]["screen_names"] == ["hotboy_2k9"]
    print("checked: one report, two evidence items, categories merged")


def test_a_screen_name_given_over_two_messages_is_added(disclose: Disclose, esc_db: Database) -> None:
    conv, report_id = disclose("có người lạ dọa tung ảnh của em", assessment(3, "sextortion"))
    disclose("nick của nó là", assessment(3, "sextortion"), conv)
    disclose("tuan_dz2010 á", assessment(3, "sextortion"), conv)
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.version == 3
        assert row.content["reported_person"]["screen_names"] == ["tuan_dz2010"]


def test_a_fact_the_counselor_removed_is_not_added_back_by_later_messages(
    disclose: Disclose, esc: EscalationService, esc_db: Database
) -> None:
    """Each later message adds what it tells; the earlier messages are not read again,
    so a counselor's correction stays (here: the child's own number, taken for the
    other person's)."""
    conv, report_id = disclose("nó dọa tung ảnh của em, sđt em là 0912 345 678", assessment(3, "sextortion"))
    disclose("nó nhắn cho em suốt", assessment(3, "sextortion"), conv)
    supervisor = Principal("01" + "S" * 24, "sup", "supervisor", permissions=PERMISSIONS["supervisor"])
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.content["reported_person"]["phone_numbers"] == ["+84912345678"]
        version = row.version
    esc.edit(supervisor, report_id, TipReportUpdate(
        version=version, reported_person=ReportedPersonUpdate(phone_numbers=[])
    ))
    disclose("em sợ lắm", assessment(3, "sextortion"), conv)
    disclose("số của nó là 0987.654.321", assessment(3, "sextortion"), conv)
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.version == version + 3
        assert row.content["reported_person"]["phone_numbers"] == ["+84987654321"]
        assert len(row.content["evidence"]["items"]) == 4


def test_urgent_disclosure_alerts_on_call_at_once(disclose: Disclose, esc_db: Database) -> None:
    _, report_id = disclose("em muốn chết, em đã chuẩn bị thuốc rồi", assessment(4, "self_harm"))
    assert outbox(esc_db, report_id) == [
        ("alert", "alert.report_created", "counselors"),
        ("alert", "alert.urgent_report", "on_call"),
    ]


def test_severity_rising_to_4_in_an_open_report_alerts_on_call(disclose: Disclose, esc_db: Database) -> None:
    conv, report_id = disclose("bố dượng đánh em", assessment(3, "violence"))
    disclose("bố dượng đang cầm dao đứng ngoài cửa", assessment(4, "violence"), conv)
    assert ("alert", "alert.urgent_report", "on_call") in outbox(esc_db, report_id)


def test_answer_not_safe_now_is_recorded_and_makes_the_report_urgent(disclose: Disclose, esc_db: Database) -> None:
    conv, report_id = disclose("bố dượng đánh em", assessment(3, "violence"))
    disclose("em không an toàn", assessment(0, "none"), conv)
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None
        assert row.content["child"]["safe_now"] is False and row.urgent and row.severity == 4


def test_no_report_below_severity_3(disclose: Disclose, esc_db: Database) -> None:
    _, report_id = disclose("bạn trong lớp chửi em trên mạng", assessment(2, "cyberbullying"))
    assert report_id is None and outbox(esc_db) == []


def test_report_and_outbox_roll_back_with_the_message(esc_db: Database, esc: EscalationService) -> None:
    with pytest.raises(RuntimeError), esc_db.session() as s:
        conv = Conversation(channel="web", audience="child", risk_severity=0, risk_state={}, needs_followup=False)
        s.add(conv)
        s.flush()
        msg = Message(conversation_id=conv.id, role="user", channel="web", audience="child", text="chú sờ em")
        s.add(msg)
        s.flush()
        esc.on_turn(s, conv, msg, assessment())
        raise RuntimeError("crash before commit")
    with esc_db.session() as s:
        for model in (TipReportRow, OutboxMessage, Message, AuditEntry):
            assert s.scalar(sa.select(sa.func.count()).select_from(model)) == 0
    print("checked: nothing of the report, outbox or audit survives a failed turn")


def test_one_open_report_per_conversation_is_enforced_by_the_database(
    disclose: Disclose, esc_db: Database
) -> None:
    conv, report_id = disclose("chú sờ em")
    with pytest.raises(sa.exc.IntegrityError), esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None
        s.add(TipReportRow(
            id="01" + "A" * 24, conversation_id=conv, open_conversation_id=conv, status="pending_review",
            version=1, schema_version="1.0", channel="web", severity=3, urgent=False, primary_category="grooming",
            categories=["grooming"], content=row.content, first_disclosure_at=utcnow(), signals=[],
            model_version="", delivery_failed=False,
        ))


def test_sweep_alerts_once_about_urgent_reports_waiting_over_15_minutes(
    disclose: Disclose, esc_db: Database, esc: EscalationService
) -> None:
    _, report_id = disclose("em muốn chết ngay bây giờ", assessment(4, "self_harm"))
    with esc_db.session() as s:
        assert esc.sweep(s) == 0
    later = utcnow() + timedelta(minutes=16)
    with esc_db.session() as s:
        assert esc.sweep(s, later) == 1
    with esc_db.session() as s:
        assert esc.sweep(s, later) == 0
    events = [e for _, e, _ in outbox(esc_db, report_id)]
    assert events.count("alert.urgent_unreviewed") == 2  # counselors and on-call, once
    print("checked: no alert before 15 minutes, one per group after, none repeated")


def test_production_refuses_agencies_without_endpoints(esc_db: Database) -> None:
    from assistant.settings import Settings

    settings = Settings(
        mode="production", security={"pseudonym_key": "k" * 40, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, database={"url": esc_db.url},
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(ValueError, match="city_police"):
        EscalationService(esc_db, settings).check_config()


def test_not_safe_in_the_disclosure_itself_makes_the_report_urgent(disclose: Disclose, esc_db: Database) -> None:
    _, report_id = disclose("bố dượng đánh em, em không an toàn", assessment(3, "violence"))
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.urgent and row.content["child"]["safe_now"] is False
    assert ("alert", "alert.urgent_report", "on_call") in outbox(esc_db, report_id)


def test_turns_of_a_conversation_that_never_escalated_skip_the_report_lookup(
    esc_db: Database, esc: EscalationService
) -> None:
    """Most turns never escalate: the hook then runs no query. Once a conversation
    has escalated, every later turn looks up its open report (answers like "em
    không an toàn" are recorded there)."""

    def turn(conversation_id: str | None, text: str, risk: RiskAssessment) -> tuple[str, list[str]]:
        statements: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(statement)

        with esc_db.session() as s:
            conv = s.get(Conversation, conversation_id) if conversation_id else None
            if conv is None:
                conv = Conversation(channel="web", audience="child", risk_severity=0, risk_state={},
                                    needs_followup=False)
                s.add(conv)
            conv.risk_severity = max(conv.risk_severity, risk.severity)
            msg = Message(conversation=conv, role="user", channel="web", audience="child", text=text,
                          severity=risk.severity, categories=risk.categories)
            s.add(msg)
            s.flush()
            sa.event.listen(esc_db.engine, "before_cursor_execute", record)
            try:
                esc.on_turn(s, conv, msg, risk)
            finally:
                sa.event.remove(esc_db.engine, "before_cursor_execute", record)
            return conv.id, statements

    conv, quiet = turn(None, "bạn trong lớp chửi em trên mạng", assessment(2, "cyberbullying"))
    assert quiet == []
    _, disclosed = turn(conv, "chú sờ em", assessment(3, "sexual_abuse"))
    assert any("INSERT INTO tip_report" in s for s in disclosed)
    _, later = turn(conv, "ok cảm ơn", assessment(0, "none"))
    assert any("FROM tip_report" in s for s in later), later
