"""The escalation service: opens tip reports from the chat, and everything people do with them.

- ``on_turn`` is the ``ChatService`` hook. It runs INSIDE the transaction that
  stores the user's message: a disclosure (severity >= 3) opens a report, or
  appends to the conversation's open report, and writes the outbox rows of its
  alerts in that same transaction. Nothing is lost if the process dies after
  the reply is sent; nothing is half-written if it dies before.
- The review actions (``list_reports``, ``read``, ``edit``, ``assign``,
  ``approve``, ``dismiss``, ``close``, ``merge``, ``acknowledge``,
  ``redeliver``, ``add_note``, ``export``) check the role and the object
  (counselors act on reports routed to their agencies or wards), move the
  state machine and append to the audit log, each in one transaction.
- ``after_delivery``, ``delivery_failing`` and ``sweep`` are called by the
  delivery worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, exists, false, func, or_, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from assistant.auth import Account, Principal
from assistant.db import Conversation, Database, Message
from assistant.db.models import utcnow
from assistant.privacy.pii import redact
from assistant.pseudonym import pseudonymize
from assistant.risk.base import RiskAssessment
from assistant.risk.taxonomy import HIGH_CATEGORIES, LABELS_VI, MODERATE_CATEGORIES, escalates
from assistant.settings import Settings
from escalation import audit, states
from escalation.errors import Forbidden, IllegalTransition, InvalidReportEdit, ReportNotFound, StaleReport
from escalation.extract import (
    extract_age,
    extract_carer_knows,
    extract_gender,
    extract_ongoing,
    extract_phones,
    extract_place,
    extract_platforms,
    extract_relationship,
    extract_safe_now,
    extract_screen_names,
    extract_urls,
    extract_when,
    profile_urls,
)
from escalation.models import OutboxMessage, ReportNote, ReportRecipient, TipReportRow
from escalation.routing import Router, base_agency
from escalation.schemas import (
    SCHEMA_VERSION,
    Child,
    Delivery,
    Evidence,
    EvidenceItem,
    Handling,
    Incident,
    Meta,
    Note,
    ReportContent,
    ReportedPerson,
    StateChange,
    TipReport,
    TipReportUpdate,
    Urgency,
    WardRef,
)
from escalation.settings import ALERT_GROUPS
from escalation.sinks import Notice
from escalation.wards import extract_ward, ward_by_code

log = logging.getLogger(__name__)

REPORT_CATEGORIES = frozenset(HIGH_CATEGORIES) | frozenset(MODERATE_CATEGORIES)
STATE_EVENTS = frozenset({"TipReportCreated", "TipReportAppended", *states.EVENTS.values()})
MAX_EVIDENCE_ITEMS = 100
_LISTED_FACTS = {"phones": 10, "urls": 50, "profiles": 20, "screen_names": 20, "platforms": 20}
"""The list-valued facts of ``EscalationService._facts`` and how many of each a report keeps."""


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ReportFilters:
    status: Sequence[str] = ()
    severity: int | None = None
    category: str | None = None
    ward: int | None = None
    age_min: int | None = None
    age_max: int | None = None
    urgent: bool | None = None
    assigned: str | None = None  # "me" | "none" | a username
    limit: int = 50
    offset: int = 0


class EscalationService:
    def __init__(self, db: Database, settings: Settings, router: Router | None = None) -> None:
        self.db = db
        self.settings = settings
        self.esc = settings.escalation
        self.router = router or Router.from_file(self.esc.routing_file)

    # ------------------------------------------------------------------ config
    def config_problems(self) -> list[str]:
        """Agencies and alert groups without an endpoint (they fall back to a file drop)."""
        missing = []
        for agency in self.router.config.agencies:
            if self.esc.endpoint(agency) is None:
                missing.append(agency)
        for group in ALERT_GROUPS:
            if self.esc.endpoint(group) is None:
                missing.append(group)
        return [f"escalation.endpoints.{name} is not configured" for name in missing]

    def check_config(self) -> None:
        if self.settings.production:
            problems = self.config_problems()
            if problems:
                raise ValueError("; ".join(problems))
        problems = self.config_problems()
        if problems:
            log.info("no endpoint for some destinations; they get a file drop under %s: %s",
                     self.settings.outbox_dir, "; ".join(problems))

    def link(self, report_id: str) -> str:
        return f"{self.esc.public_base_url.rstrip('/')}/console/reports/{report_id}"

    # ------------------------------------------------------------------ chat hook
    def on_turn(self, session: Session, conversation: Conversation, message: Message, assessment: RiskAssessment) -> None:
        """The ``ChatService`` hook (inside the message's write transaction).

        Expects ``conversation.risk_severity`` already raised by this message, as
        ``ChatService`` does before it calls its hooks."""
        if message.role != "user":
            return
        if assessment.escalate:
            report: TipReportRow | None = self.record_disclosure(session, conversation, message, assessment)
        elif escalates(conversation.risk_severity):
            report = self._open_report(session, conversation.id)
        else:
            # Only an escalated turn opens a report, and a conversation's risk never
            # drops: below that level it has none, so most turns skip the lookup.
            report = None
        if report is not None:
            # "em không an toàn" may come with the disclosure or after the bot asks.
            self._record_answers(session, report, message)

    def _lock_conversation(self, session: Session, conversation_id: str) -> None:
        # PostgreSQL: serialise disclosures of one conversation. SQLite serialises
        # writers anyway (and ignores FOR UPDATE): no statement there.
        if session.get_bind().dialect.name != "sqlite":
            session.execute(select(Conversation.id).where(Conversation.id == conversation_id).with_for_update())

    def _open_report(self, session: Session, conversation_id: str) -> TipReportRow | None:
        return session.scalar(select(TipReportRow).where(TipReportRow.open_conversation_id == conversation_id))

    def record_disclosure(
        self, session: Session, conversation: Conversation, message: Message, assessment: RiskAssessment
    ) -> TipReportRow:
        """Open a report for the conversation, or append this disclosure to its open one."""
        self._lock_conversation(session, conversation.id)
        report = self._open_report(session, conversation.id)
        if report is None:
            return self._create(session, conversation, message, assessment)
        self._append(session, report, conversation, message, assessment)
        return report

    def _categories(self, assessment: RiskAssessment) -> list[str]:
        ranked = sorted(
            (c for c, score in assessment.categories.items() if c in REPORT_CATEGORIES and score > 0),
            key=lambda c: -assessment.categories[c],
        )
        primary = assessment.primary if assessment.primary in REPORT_CATEGORIES else None
        if primary is None:
            primary = ranked[0] if ranked else "violence"
        return [primary, *[c for c in ranked if c != primary]]

    def _user_messages(self, session: Session, conversation_id: str) -> list[Message]:
        return list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.role == "user")
                .order_by(Message.id)
            )
        )

    def _evidence_item(self, message: Message) -> EvidenceItem:
        text = message.text
        limit = self.esc.excerpt_chars
        excerpt = text if len(text) <= limit else text[: limit - 1] + "…"
        return EvidenceItem(
            message_id=message.id,
            at=aware(message.created_at or utcnow()),
            excerpt=excerpt,
            sha256=_sha256(text),
            urls=extract_urls(text)[:20],
        )

    def _listed_facts(self, text: str) -> dict[str, list[str]]:
        urls = extract_urls(text)
        found = {
            "phones": extract_phones(text),
            "urls": urls,
            "profiles": profile_urls(urls),
            "screen_names": [n[:64] for n in extract_screen_names(text)],
            "platforms": extract_platforms(text),
        }
        return {key: values[: _LISTED_FACTS[key]] for key, values in found.items()}

    def _facts(self, texts: list[str]) -> dict[str, Any]:
        joined = "\n".join(texts)
        listed = self._listed_facts(joined)
        platforms = listed["platforms"]
        age, estimated = extract_age(joined)
        ward = None
        for text in texts:
            match = extract_ward(text)
            if match is not None and match.ward is not None:
                ward = match.ward
                break
        return {
            **listed,
            "place": extract_place(joined, platforms),
            "ongoing": extract_ongoing(joined),
            "when": (extract_when(joined) or None),
            "age": age,
            "age_estimated": estimated,
            "gender": extract_gender(joined),
            "relationship": extract_relationship(joined),
            "carer_knows": extract_carer_knows(joined),
            "ward": ward,
        }

    def _previous_user_text(self, session: Session, conversation_id: str, before_id: int) -> str | None:
        return session.scalar(
            select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.role == "user", Message.id < before_id)
            .order_by(Message.id.desc())
            .limit(1)
        )

    def _new_facts(self, previous: str | None, text: str) -> dict[str, Any]:
        """What one more message tells: its own facts, and listed facts (screen names,
        phones, links) that start in the previous message and end in it ("nick nó là" /
        "tuan_2k10").

        A report already holds the facts of the earlier messages, and a counselor may
        have corrected them: they are not extracted again (a removed wrong number stays
        removed), and each turn costs the same however long the conversation is."""
        facts = self._facts([text])
        if previous is None:
            return facts
        spanning = self._listed_facts(previous + "\n" + text)
        if any(v not in facts[key] for key, values in spanning.items() for v in values):
            before = self._listed_facts(previous)
            for key, values in spanning.items():
                facts[key] = _union(facts[key], [v for v in values if v not in before[key]], _LISTED_FACTS[key])
        return facts

    def _description(self, audience: str, channel: str, categories: list[str], excerpt: str) -> str:
        who = "Trẻ tự kể" if audience == "child" else "Phụ huynh/người thân kể về trẻ"
        labels = ", ".join(LABELS_VI.get(c, c) for c in categories)
        short = excerpt if len(excerpt) <= 300 else excerpt[:299] + "…"
        return (
            f"{who} qua kênh {channel}. Nghi ngờ: {labels}. Lời kể: “{short}”. "
            "(Tóm tắt tự động, tư vấn viên kiểm tra và sửa.)"
        )

    def _create(
        self, session: Session, conversation: Conversation, message: Message, assessment: RiskAssessment
    ) -> TipReportRow:
        now = utcnow()
        categories = self._categories(assessment)
        users = self._user_messages(session, conversation.id)
        facts = self._facts([m.text for m in users])
        items = [self._evidence_item(m) for m in users if m.id != message.id and (m.severity or 0) >= 2][-4:]
        items.append(self._evidence_item(message))
        ward = facts["ward"]
        key = self.settings.security.pseudonym_key.get_secret_value()
        content = ReportContent(
            reporter_role="child" if conversation.audience == "child" else "parent",
            incident=Incident(
                categories=categories,  # type: ignore[arg-type]
                primary_category=categories[0],  # type: ignore[arg-type]
                description=self._description(conversation.audience, conversation.channel, categories, message.text),
                when=facts["when"],
                ongoing=facts["ongoing"],
                platforms=facts["platforms"],
                place=facts["place"],
                ward=WardRef(code=ward.code, name=ward.name) if ward else None,
            ),
            child=Child(
                pseudonym=pseudonymize(key, "report", conversation.id)[:24],
                age=facts["age"],
                age_estimated=facts["age_estimated"],
                gender=facts["gender"],
                carer_knows=facts["carer_knows"],
            ),
            reported_person=ReportedPerson(
                relationship=facts["relationship"],
                screen_names=facts["screen_names"],
                profile_urls=facts["profiles"],
                phone_numbers=facts["phones"],
            ),
            evidence=Evidence(items=items, urls=facts["urls"]),
        )
        route = self.router.route(categories, content.incident.place, ward.code if ward else None)
        row = TipReportRow(
            id=str(ULID()),
            conversation_id=conversation.id,
            open_conversation_id=conversation.id,
            status=states.PENDING_REVIEW,
            version=1,
            schema_version=SCHEMA_VERSION,
            channel=conversation.channel,
            severity=assessment.severity,
            urgent=assessment.severity >= 4,
            primary_category=categories[0],
            categories=categories,
            ward_code=ward.code if ward else None,
            child_age=facts["age"],
            agency=route.primary,
            signals=list(assessment.signals)[:50],
            model_version=assessment.model_version[:64],
            content=content.model_dump(mode="json"),
            delivery_failed=False,
            first_disclosure_at=aware(message.created_at or now),
            created_at=now,
            updated_at=now,
        )
        row.recipients = [ReportRecipient(agency=a, position=i) for i, a in enumerate(route.agencies)]
        session.add(row)
        session.flush()
        audit.record(
            session,
            "TipReportCreated",
            None,
            "tip_report",
            row.id,
            {"status": row.status, "version": 1, "severity": row.severity, "route": list(route.rules),
             "route_notes": list(route.notes)},
        )
        self._enqueue_alert(session, row, "report_created", "counselors")
        if row.urgent:
            self._enqueue_alert(session, row, "urgent_report", "on_call")
        log.info("tip report opened", extra={"report_id": row.id, "severity": row.severity, "urgent": row.urgent})
        return row

    def _content(self, row: TipReportRow) -> ReportContent:
        return ReportContent.model_validate(row.content)

    def _append(
        self,
        session: Session,
        row: TipReportRow,
        conversation: Conversation,
        message: Message,
        assessment: RiskAssessment,
    ) -> None:
        content = self._content(row)
        facts = self._new_facts(self._previous_user_text(session, conversation.id, message.id), message.text)
        known = {item.message_id for item in content.evidence.items}
        if message.id not in known and len(content.evidence.items) < MAX_EVIDENCE_ITEMS:
            content.evidence.items.append(self._evidence_item(message))
        content.evidence.urls = _union(content.evidence.urls, facts["urls"], _LISTED_FACTS["urls"])
        categories = _union(row.categories, self._categories(assessment), 12)
        incident = content.incident
        incident.categories = categories  # type: ignore[assignment]
        incident.platforms = _union(incident.platforms, facts["platforms"], _LISTED_FACTS["platforms"])
        if incident.place == "unknown":
            incident.place = facts["place"]
        if incident.ongoing == "unknown":
            incident.ongoing = facts["ongoing"]
        incident.when = incident.when or facts["when"]
        if incident.ward is None and facts["ward"] is not None:
            incident.ward = WardRef(code=facts["ward"].code, name=facts["ward"].name)
        child = content.child
        if child.age is None and facts["age"] is not None:
            child.age, child.age_estimated = facts["age"], facts["age_estimated"]
        child.gender = child.gender or facts["gender"]
        person = content.reported_person
        person.relationship = person.relationship or facts["relationship"]
        person.screen_names = _union(person.screen_names, facts["screen_names"], _LISTED_FACTS["screen_names"])
        person.profile_urls = _union(person.profile_urls, facts["profiles"], _LISTED_FACTS["profiles"])
        person.phone_numbers = _union(person.phone_numbers, facts["phones"], _LISTED_FACTS["phones"])
        became_urgent = assessment.severity >= 4 and not row.urgent
        row.severity = max(row.severity, assessment.severity)
        row.urgent = row.severity >= 4
        row.categories = categories
        row.signals = _union(row.signals, list(assessment.signals), 50)
        merged = ReportContent.model_validate(content.model_dump())
        self._store_content(row, merged)
        if row.status == states.PENDING_REVIEW:
            self._reroute(row, merged)
        row.version += 1
        row.updated_at = utcnow()
        audit.record(
            session, "TipReportAppended", None, "tip_report", row.id,
            {"status": row.status, "version": row.version, "message_id": message.id, "severity": row.severity},
        )
        if became_urgent:
            self._enqueue_alert(session, row, "urgent_report", "on_call")
        if row.status in (states.SENT, states.ACKNOWLEDGED):
            self._enqueue_alert(session, row, "report_updated", "counselors")

    def _record_answers(self, session: Session, row: TipReportRow, message: Message) -> None:
        """Answers to "are you safe now?" and "does a carer know?" after a report is open."""
        safe = extract_safe_now(message.text)
        carer = extract_carer_knows(message.text)
        if safe is None and carer is None:
            return
        content = self._content(row)
        changed = []
        if safe is not None and content.child.safe_now != safe:
            content.child.safe_now = safe
            changed.append("child.safe_now")
        if carer is not None and content.child.carer_knows != carer:
            content.child.carer_knows = carer
            changed.append("child.carer_knows")
        if not changed:
            return
        if message.id not in {i.message_id for i in content.evidence.items}:
            content.evidence.items.append(self._evidence_item(message))
        self._store_content(row, content)
        row.version += 1
        row.updated_at = utcnow()
        became_urgent = safe is False and not row.urgent and row.status in states.OPEN_STATUSES
        if became_urgent:
            row.severity, row.urgent = 4, True
            row.signals = _union(row.signals, ["child_says_not_safe_now"], 50)
        audit.record(session, "TipReportAnswered", None, "tip_report", row.id,
                     {"status": row.status, "version": row.version, "fields": changed})
        if became_urgent:
            self._enqueue_alert(session, row, "urgent_report", "on_call")

    def _store_content(self, row: TipReportRow, content: ReportContent) -> None:
        row.content = content.model_dump(mode="json")
        row.primary_category = content.incident.primary_category
        row.categories = list(content.incident.categories)
        row.ward_code = content.incident.ward.code if content.incident.ward else None
        row.child_age = content.child.age

    def _reroute(self, row: TipReportRow, content: ReportContent) -> None:
        """Route the report again from ``content`` (as just stored in ``row``)."""
        route = self.router.route(list(content.incident.categories), content.incident.place, row.ward_code)
        current = [r.agency for r in row.recipients]
        if current != list(route.agencies):
            row.recipients = [ReportRecipient(agency=a, position=i) for i, a in enumerate(route.agencies)]
            row.agency = route.primary

    # ------------------------------------------------------------------ outbox
    def _enqueue(
        self,
        session: Session,
        row: TipReportRow,
        kind: str,
        event_type: str,
        destination: str,
        message_id: str,
        dedupe_key: str,
        payload: dict[str, Any],
    ) -> OutboxMessage | None:
        existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return None
        item = OutboxMessage(
            kind=kind,
            event_type=event_type,
            report_id=row.id,
            report_version=row.version,
            destination=destination,
            dedupe_key=dedupe_key,
            message_id=message_id,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=utcnow(),
            failure_alerted=False,
            created_at=utcnow(),
        )
        session.add(item)
        return item

    def _enqueue_alert(self, session: Session, row: TipReportRow, event: str, group: str) -> None:
        payload = {
            "type": f"alert.{event}",
            "timestamp": utcnow().isoformat(),
            "data": {
                "event": event,
                "report_id": row.id,
                "severity": row.severity,
                "urgent": row.urgent,
                "status": row.status,
                "link": self.link(row.id),
            },
        }
        self._enqueue(
            session, row, "alert", f"alert.{event}", group,
            f"{row.id}.{event}.v{row.version}", f"alert:{event}:{row.id}:v{row.version}:{group}", payload,
        )

    def _enqueue_report(self, session: Session, row: TipReportRow, agency: str) -> None:
        document = self.document(session, row, include_notes=False)
        payload = {
            "type": "tip_report.approved",
            "timestamp": utcnow().isoformat(),
            "data": document.model_dump(mode="json"),
        }
        self._enqueue(
            session, row, "report", "tip_report.approved", agency,
            f"{row.id}.v{row.version}", f"report:{row.id}:v{row.version}:{agency}", payload,
        )

    def notice_for(self, item: OutboxMessage) -> Notice:
        """The e-mail text of an outbox item: never the report content."""
        data = item.payload.get("data", {}) if isinstance(item.payload, dict) else {}
        report_id = item.report_id or "?"
        urgent = bool(data.get("urgent") or (data.get("urgency") or {}).get("urgent"))
        tag = "KHẨN – " if urgent else ""
        link = self.link(report_id)
        if item.kind == "report":
            name = self.router.agency_name(item.destination)
            return Notice(
                f"[Bạn An Toàn] {tag}Báo cáo bảo vệ trẻ em {report_id}",
                (
                    f"Kính gửi {name},",
                    f"Tư vấn viên đã duyệt và chuyển đến đơn vị báo cáo mã {report_id}.",
                    "Nội dung báo cáo chỉ xem được sau khi đăng nhập, theo đường dẫn dưới đây.",
                    "Xin xác nhận tiếp nhận trong vòng 12 giờ (Nghị định 56/2017/NĐ-CP, Điều 26).",
                ),
                link,
            )
        event = str(data.get("event", item.event_type))
        texts = {
            "report_created": "Có báo cáo mới cần xem xét.",
            "urgent_report": "BÁO CÁO KHẨN: trẻ có thể đang gặp nguy hiểm ngay lúc này. Cần xử lý ngay.",
            "urgent_unreviewed": "Báo cáo khẩn đã chờ quá 15 phút mà chưa được xem xét.",
            "delivery_failing": "Chuyển báo cáo đến cơ quan đang thất bại nhiều lần: báo cáo đã quay lại hàng chờ.",
            "report_updated": "Báo cáo đã gửi có thêm lời kể mới.",
        }
        return Notice(
            f"[Bạn An Toàn] {tag}{texts.get(event, 'Thông báo')} ({report_id})",
            (texts.get(event, event), f"Mã báo cáo: {report_id}.", "Mở bảng điều khiển (cần đăng nhập):"),
            link,
        )

    # ------------------------------------------------------------------ worker callbacks
    def after_delivery(self, session: Session, item: OutboxMessage, acknowledged: bool) -> None:
        """A delivery succeeded: a report whose every recipient has it becomes ``sent``."""
        if item.kind != "report" or item.report_id is None:
            return
        row = session.get(TipReportRow, item.report_id)
        if row is None:
            return
        if row.status == states.APPROVED:
            rows = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.report_id == row.id,
                    OutboxMessage.kind == "report",
                    OutboxMessage.report_version == item.report_version,
                )
            ).all()
            if rows and all(r.status == "delivered" for r in rows):
                row.delivery_failed = False
                self._move(session, row, states.SENT, None, None)
        if acknowledged and row.status == states.SENT:
            item.acknowledged_at = utcnow()
            self._move(session, row, states.ACKNOWLEDGED, None, f"acknowledged by {item.destination}")

    def delivery_failing(self, session: Session, item: OutboxMessage) -> None:
        """Deliveries keep failing: the report goes back to the counselors' queue."""
        if item.kind != "report" or item.report_id is None:
            log.error("alert delivery keeps failing", extra={"outbox_id": item.id, "destination": item.destination})
            return
        row = session.get(TipReportRow, item.report_id)
        if row is None:
            return
        row.delivery_failed = True
        audit.record(session, "TipReportDeliveryFailing", None, "tip_report", row.id,
                     {"status": row.status, "destination": item.destination, "attempts": item.attempts,
                      "error": item.last_error})
        self._enqueue(
            session, row, "alert", "alert.delivery_failing", "counselors",
            f"{row.id}.delivery_failing.{item.id}", f"alert:delivery_failing:{item.id}",
            {"type": "alert.delivery_failing", "timestamp": utcnow().isoformat(),
             "data": {"event": "delivery_failing", "report_id": row.id, "severity": row.severity,
                      "urgent": row.urgent, "status": row.status, "destination": item.destination,
                      "attempts": item.attempts, "link": self.link(row.id)}},
        )

    def sweep(self, session: Session, now: datetime | None = None) -> int:
        """Alert again about urgent reports left unreviewed too long. Returns how many."""
        now = now or utcnow()
        cutoff = now - timedelta(minutes=self.esc.urgent_review_minutes)
        due = session.scalars(
            select(TipReportRow.id).where(
                TipReportRow.urgent.is_(True),
                TipReportRow.status == states.PENDING_REVIEW,
                TipReportRow.created_at <= cutoff,
                TipReportRow.urgent_alerted_at.is_(None),
            )
        ).all()
        count = 0
        for report_id in due:
            # Only the worker that flips the marker sends the alert.
            result = session.execute(
                update(TipReportRow)
                .where(TipReportRow.id == report_id, TipReportRow.urgent_alerted_at.is_(None))
                .values(urgent_alerted_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                continue
            row = session.get(TipReportRow, report_id)
            assert row is not None
            for group in ALERT_GROUPS:
                self._enqueue_alert(session, row, "urgent_unreviewed", group)
            audit.record(session, "TipReportUrgentUnreviewed", None, "tip_report", row.id,
                         {"status": row.status, "minutes": self.esc.urgent_review_minutes})
            count += 1
        return count

    # ------------------------------------------------------------------ access
    def _scope(self, principal: Principal) -> ColumnElement[bool]:
        if principal.can("reports:all"):
            return ~false()
        conditions: list[ColumnElement[bool]] = []
        if principal.wards:
            conditions.append(TipReportRow.ward_code.in_(list(principal.wards)))
        if principal.agencies:
            agency_match: list[ColumnElement[bool]] = [ReportRecipient.agency.in_(list(principal.agencies))]
            agency_match += [ReportRecipient.agency.like(f"{a}:%") for a in principal.agencies if ":" not in a]
            conditions.append(
                exists(select(ReportRecipient.report_id).where(
                    ReportRecipient.report_id == TipReportRow.id, or_(*agency_match)
                ))
            )
        return or_(*conditions) if conditions else false()

    def can_see(self, principal: Principal, row: TipReportRow) -> bool:
        if not principal.can("reports:read"):
            return False
        if principal.can("reports:all"):
            return True
        if row.ward_code is not None and row.ward_code in principal.wards:
            return True
        agencies = set(principal.agencies)
        return any(r.agency in agencies or base_agency(r.agency) in agencies for r in row.recipients)

    def _load(self, session: Session, principal: Principal, report_id: str, permission: str) -> TipReportRow:
        principal.require(permission)
        row = session.get(TipReportRow, report_id) if len(report_id) == 26 else None
        if row is None:
            raise ReportNotFound("Không tìm thấy báo cáo.", f"No report {report_id!r}.")
        if not self.can_see(principal, row):
            with self.db.session() as denied:
                audit.record(denied, "TipReportAccessDenied", principal, "tip_report", row.id, {})
            raise Forbidden(
                "Báo cáo này không thuộc phạm vi của bạn.",
                "This report is outside your agencies and wards.",
            )
        return row

    # ------------------------------------------------------------------ reading
    def document(self, session: Session, row: TipReportRow, include_notes: bool = True) -> TipReport:
        content = self._content(row)
        events = audit.entries(session, "tip_report", row.id, actions=sorted(STATE_EVENTS), limit=500)
        history = [
            StateChange(
                status=str(e.details.get("status", row.status)),  # type: ignore[arg-type]
                at=aware(e.at),
                by=e.actor,
                reason=(e.details.get("reason") or (e.action if e.action != "TipReportCreated" else None)),
            )
            for e in reversed(events)
        ]
        deliveries = [
            Delivery(
                agency=o.destination,
                sink=self._sink_name(o.destination),
                version=o.report_version or 0,
                status="delivered" if o.status == "delivered" else ("failed" if o.status == "failed" else "pending"),
                attempts=o.attempts,
                delivered_at=aware(o.delivered_at) if o.delivered_at else None,
                acknowledged_at=aware(o.acknowledged_at) if o.acknowledged_at else None,
                reference=o.reference,
            )
            for o in session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.report_id == row.id, OutboxMessage.kind == "report")
                .order_by(OutboxMessage.id)
            )
        ]
        notes: list[Note] = []
        if include_notes:
            notes = [
                Note(at=aware(n.created_at), by=n.author, text=n.text)
                for n in session.scalars(select(ReportNote).where(ReportNote.report_id == row.id).order_by(ReportNote.id))
            ]
        assignee = session.get(Account, row.assigned_to_id) if row.assigned_to_id else None
        return TipReport(
            meta=Meta(
                id=row.id,
                version=row.version,
                created_at=aware(row.created_at),
                channel=row.channel,
                reporter_role=content.reporter_role,
                consent_to_contact=content.consent_to_contact,
                confidentiality=content.confidentiality,
            ),
            urgency=Urgency(
                severity=row.severity, urgent=row.urgent, reasons=row.signals[:50], model_version=row.model_version
            ),
            incident=content.incident,
            child=content.child,
            reported_person=content.reported_person,
            evidence=content.evidence,
            handling=Handling(
                status=row.status,  # type: ignore[arg-type]
                assigned_to=assignee.username if assignee else None,
                decision=row.decision,
                recipients=[r.agency for r in row.recipients],
                deliveries=deliveries,
                notes=notes,
                history=history,
                merged_into=row.merged_into_id,
            ),
        )

    def _sink_name(self, destination: str) -> str:
        endpoint = self.endpoint_for(destination)
        return endpoint.sink if endpoint is not None else "file"

    def endpoint_for(self, destination: str) -> Any:
        ep = self.esc.endpoint(destination.replace(":", "_"))
        if ep is None and ":" in destination:
            ep = self.esc.endpoint(base_agency(destination))
        return ep

    def summary(self, row: TipReportRow, assignee: str | None = None) -> dict[str, Any]:
        now = utcnow()
        waiting = (now - aware(row.created_at)).total_seconds() / 3600
        return {
            "id": row.id,
            "status": row.status,
            "version": row.version,
            "severity": row.severity,
            "urgent": row.urgent,
            "primary_category": row.primary_category,
            "categories": list(row.categories),
            "ward_code": row.ward_code,
            "ward_name": (w.name if (w := ward_by_code(row.ward_code)) else None) if row.ward_code else None,
            "child_age": row.child_age,
            "channel": row.channel,
            "agency": row.agency,
            "recipients": [r.agency for r in row.recipients],
            "assigned_to": assignee,
            "delivery_failed": row.delivery_failed,
            "created_at": aware(row.created_at).isoformat(),
            "updated_at": aware(row.updated_at).isoformat(),
            "waiting_hours": round(waiting, 2),
            "near_deadline": row.status in (states.PENDING_REVIEW, states.APPROVED) and waiting >= 9,
        }

    def _filtered(self, principal: Principal, f: ReportFilters) -> Select[TipReportRow]:
        q = select(TipReportRow).where(self._scope(principal))
        if f.status:
            q = q.where(TipReportRow.status.in_(list(f.status)))
        if f.severity is not None:
            q = q.where(TipReportRow.severity == f.severity)
        if f.category:
            q = q.where(TipReportRow.primary_category == f.category)
        if f.ward is not None:
            q = q.where(TipReportRow.ward_code == f.ward)
        if f.age_min is not None:
            q = q.where(TipReportRow.child_age >= f.age_min)
        if f.age_max is not None:
            q = q.where(TipReportRow.child_age <= f.age_max)
        if f.urgent is not None:
            q = q.where(TipReportRow.urgent.is_(f.urgent))
        if f.assigned == "me":
            q = q.where(TipReportRow.assigned_to_id == principal.account_id)
        elif f.assigned == "none":
            q = q.where(TipReportRow.assigned_to_id.is_(None))
        elif f.assigned:
            q = q.where(
                TipReportRow.assigned_to_id.in_(select(Account.id).where(Account.username == f.assigned))
            )
        return q

    def list_reports(self, principal: Principal, f: ReportFilters) -> dict[str, Any]:
        principal.require("reports:read")
        with self.db.session() as session:
            q = self._filtered(principal, f)
            total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = session.scalars(
                q.order_by(TipReportRow.urgent.desc(), TipReportRow.severity.desc(), TipReportRow.created_at, TipReportRow.id)
                .limit(f.limit)
                .offset(f.offset)
            ).all()
            names = self._usernames(session, [r.assigned_to_id for r in rows])
            items = [self.summary(r, names.get(r.assigned_to_id or "")) for r in rows]
            audit.record(session, "TipReportsListed", principal, "tip_report", None,
                         {"filters": _filters_dict(f), "count": len(items)})
        return {"total": total, "items": items}

    def _usernames(self, session: Session, ids: Sequence[str | None]) -> dict[str, str]:
        wanted = {i for i in ids if i}
        if not wanted:
            return {}
        rows = session.execute(select(Account.id, Account.username).where(Account.id.in_(wanted))).all()
        return {row[0]: row[1] for row in rows}

    def read(self, principal: Principal, report_id: str) -> dict[str, Any]:
        """The report, its conversation context, and what routing suggested (audited)."""
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:read")
            doc = self.document(session, row)
            messages = session.scalars(
                select(Message)
                .where(Message.conversation_id == row.conversation_id)
                .order_by(Message.id.desc())
                .limit(self.esc.context_messages)
            ).all()
            content = self._content(row)
            # Messages that are report evidence are shown as they are; the rest of the
            # conversation is context, shown with personal data redacted (docs/privacy.md).
            evidence_ids = {item.message_id for item in content.evidence.items}
            context = [
                {
                    "id": m.id,
                    "role": m.role,
                    "text": m.text if m.id in evidence_ids else redact(m.text),
                    "at": aware(m.created_at).isoformat(),
                }
                for m in reversed(messages)
            ]
            route = self.router.route(list(content.incident.categories), content.incident.place, row.ward_code)
            audit.record(session, "TipReportRead", principal, "tip_report", row.id, {"version": row.version})
            return {
                "report": doc.model_dump(mode="json"),
                "summary": self.summary(row, doc.handling.assigned_to),
                "conversation": context,
                "routing": {
                    "agencies": [{"code": a, "name": self.router.agency_name(a)} for a in route.agencies],
                    "rules": list(route.rules),
                    "notes": list(route.notes),
                },
            }

    # ------------------------------------------------------------------ changing
    def edit(self, principal: Principal, report_id: str, change: TipReportUpdate) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            if row.status not in states.EDITABLE_STATUSES:
                raise IllegalTransition(
                    f"Không thể sửa báo cáo ở trạng thái '{states.LABELS_VI[row.status]}'.",
                    f"A report can be edited only while pending review (it is {row.status}).",
                )
            if change.version != row.version:
                raise StaleReport(
                    "Báo cáo vừa được thay đổi. Hãy tải lại rồi sửa.",
                    f"The report is at version {row.version}, the edit was made on version {change.version}.",
                )
            data = self._content(row).model_dump(mode="json")
            changed: list[str] = []
            patch = change.model_dump(exclude_unset=True, mode="json")
            for key in ("reporter_role", "consent_to_contact"):
                if key in patch:
                    data[key] = patch[key]
                    changed.append(key)
            for section in ("incident", "child", "reported_person"):
                for key, value in (patch.get(section) or {}).items():
                    if section == "incident" and key == "ward_code":
                        ward = ward_by_code(value) if value is not None else None
                        data["incident"]["ward"] = {"code": ward.code, "name": ward.name} if ward else None
                    else:
                        data[section][key] = value
                    changed.append(f"{section}.{key}")
            if "severity" in patch:
                changed.append("severity")
            if not changed:
                raise InvalidReportEdit("Không có gì để sửa.", "The edit changes nothing.")
            try:
                content = ReportContent.model_validate(data)
            except ValidationError as exc:
                fields = [
                    {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
                ]
                raise InvalidReportEdit(
                    "Sửa báo cáo không hợp lệ: " + "; ".join(f["field"] for f in fields),
                    "Invalid edit: " + "; ".join(f"{f['field']}: {f['problem']}" for f in fields),
                    fields,
                ) from exc
            self._store_content(row, content)
            became_urgent = False
            if change.severity is not None:
                became_urgent = change.severity == 4 and not row.urgent
                row.severity = change.severity
                row.urgent = change.severity == 4
            self._reroute(row, content)
            row.version += 1
            row.updated_at = utcnow()
            audit.record(session, "TipReportEdited", principal, "tip_report", row.id,
                         {"status": row.status, "version": row.version, "fields": changed})
            if became_urgent:
                self._enqueue_alert(session, row, "urgent_report", "on_call")
            return self.summary(row)

    def _move(
        self, session: Session, row: TipReportRow, target: str, principal: Principal | None, reason: str | None
    ) -> None:
        states.check_transition(row.status, target, reason)
        now = utcnow()
        previous = row.status
        row.status = target
        if previous == states.PENDING_REVIEW and row.reviewed_at is None:
            row.reviewed_at = now
        stamp = {
            states.APPROVED: "approved_at",
            states.SENT: "sent_at",
            states.ACKNOWLEDGED: "acknowledged_at",
            states.CLOSED: "closed_at",
            states.DISMISSED: "closed_at",
            states.MERGED: "closed_at",
        }[target]
        if getattr(row, stamp) is None:
            setattr(row, stamp, now)
        if target in states.FINAL_STATUSES:
            row.open_conversation_id = None
        if reason and target in (states.DISMISSED, states.CLOSED):
            row.decision = reason.strip()[:2000]
        row.version += 1
        row.updated_at = now
        audit.record(session, states.EVENTS[target], principal, "tip_report", row.id,
                     {"status": target, "from": previous, "version": row.version, "reason": reason})

    def _act(
        self, principal: Principal, report_id: str, target: str, reason: str | None = None
    ) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            self._move(session, row, target, principal, reason)
            if target == states.APPROVED:
                for recipient in row.recipients:
                    self._enqueue_report(session, row, recipient.agency)
            return self.summary(row)

    def approve(self, principal: Principal, report_id: str) -> dict[str, Any]:
        """Approve: the report (this version) is queued for every routed agency."""
        return self._act(principal, report_id, states.APPROVED)

    def dismiss(self, principal: Principal, report_id: str, reason: str) -> dict[str, Any]:
        return self._act(principal, report_id, states.DISMISSED, reason)

    def close(self, principal: Principal, report_id: str, reason: str) -> dict[str, Any]:
        return self._act(principal, report_id, states.CLOSED, reason)

    def acknowledge(self, principal: Principal, report_id: str, agency: str, reference: str | None) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            if agency not in [r.agency for r in row.recipients]:
                raise InvalidReportEdit("Cơ quan này không nhận báo cáo.", f"{agency!r} is not a recipient.")
            self._move(session, row, states.ACKNOWLEDGED, principal, f"acknowledged by {agency}")
            item = session.scalar(
                select(OutboxMessage)
                .where(OutboxMessage.report_id == row.id, OutboxMessage.kind == "report",
                       OutboxMessage.destination == agency)
                .order_by(OutboxMessage.id.desc())
            )
            if item is not None:
                item.acknowledged_at = utcnow()
                item.reference = (reference or item.reference or "")[:200] or None
            return self.summary(row)

    def merge(self, principal: Principal, report_id: str, into_id: str) -> dict[str, Any]:
        """Merge a duplicate into another open report of the same case (evidence and facts move)."""
        if report_id == into_id:
            raise IllegalTransition("Không thể gộp báo cáo vào chính nó.", "A report cannot be merged into itself.")
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            target = self._load(session, principal, into_id, "reports:act")
            if target.status not in states.OPEN_STATUSES:
                raise IllegalTransition("Báo cáo đích đã đóng.", "The target report is not open.")
            src, dst = self._content(row), self._content(target)
            known = {i.message_id for i in dst.evidence.items}
            dst.evidence.items.extend(i for i in src.evidence.items if i.message_id not in known)
            dst.evidence.urls = _union(dst.evidence.urls, src.evidence.urls, 50)
            p, q = dst.reported_person, src.reported_person
            p.screen_names = _union(p.screen_names, q.screen_names, 20)
            p.profile_urls = _union(p.profile_urls, q.profile_urls, 20)
            p.phone_numbers = _union(p.phone_numbers, q.phone_numbers, 10)
            self._store_content(target, ReportContent.model_validate(dst.model_dump()))
            target.version += 1
            target.updated_at = utcnow()
            row.merged_into_id = target.id
            self._move(session, row, states.MERGED, principal, f"merged into {target.id}")
            audit.record(session, "TipReportEdited", principal, "tip_report", target.id,
                         {"status": target.status, "version": target.version, "merged_from": row.id})
            return self.summary(row)

    def assign(self, principal: Principal, report_id: str, username: str | None) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            if row.status in states.FINAL_STATUSES:
                raise IllegalTransition("Báo cáo đã đóng.", f"The report is {row.status}.")
            account = None
            if username:
                account = session.scalar(select(Account).where(Account.username == username))
                if account is None or account.disabled or account.role not in ("counselor", "supervisor"):
                    raise InvalidReportEdit(
                        "Không thể giao cho tài khoản này.", f"{username!r} is not an active counselor or supervisor."
                    )
                assignee = Principal(account.id, account.username, account.role, tuple(account.agencies),
                                     tuple(account.wards), permissions=frozenset({"reports:read"}) | (
                                         frozenset({"reports:all"}) if account.role == "supervisor" else frozenset()))
                if not self.can_see(assignee, row):
                    raise InvalidReportEdit(
                        "Tài khoản này không có quyền xem báo cáo.", f"{username!r} cannot see this report."
                    )
            row.assigned_to_id = account.id if account else None
            row.version += 1
            row.updated_at = utcnow()
            audit.record(session, "TipReportAssigned", principal, "tip_report", row.id,
                         {"status": row.status, "version": row.version, "assigned_to": username})
            return self.summary(row, username)

    def redeliver(self, principal: Principal, report_id: str) -> dict[str, Any]:
        """Retry failed deliveries now; for a report already sent, send its current version as an update."""
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            if row.status not in (states.APPROVED, states.SENT, states.ACKNOWLEDGED):
                raise IllegalTransition(
                    "Chỉ gửi lại được báo cáo đã duyệt.", f"Only approved or sent reports can be redelivered ({row.status})."
                )
            reset = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.report_id == row.id, OutboxMessage.kind == "report",
                       OutboxMessage.status == "failed")
                .values(status="pending", next_attempt_at=utcnow(), failure_alerted=False, attempts=0,
                        claimed_by=None, claim_token=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )
            row.delivery_failed = False
            queued = 0
            if row.status != states.APPROVED:
                for recipient in row.recipients:
                    self._enqueue_report(session, row, recipient.agency)
                    queued += 1
            audit.record(session, "TipReportRedelivered", principal, "tip_report", row.id,
                         {"status": row.status, "version": row.version,
                          "reset": getattr(reset, "rowcount", 0), "queued": queued})
            return self.summary(row)

    def add_note(self, principal: Principal, report_id: str, text: str) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:act")
            note = ReportNote(report_id=row.id, author_id=principal.account_id, author=principal.username,
                              text=text.strip(), created_at=utcnow())
            session.add(note)
            session.flush()
            audit.record(session, "TipReportNoteAdded", principal, "tip_report", row.id,
                         {"status": row.status, "note_id": note.id})
            return {"id": note.id, "at": aware(note.created_at).isoformat(), "by": note.author, "text": note.text}

    def export(self, principal: Principal, report_id: str, fmt: str) -> tuple[bytes, str, str]:
        """One report as JSON or PDF: (bytes, media type, file name); audited."""
        from escalation.pdf import report_pdf

        with self.db.session() as session:
            row = self._load(session, principal, report_id, "reports:read")
            doc = self.document(session, row)
            audit.record(session, "TipReportExported", principal, "tip_report", row.id,
                         {"format": fmt, "version": row.version})
            if fmt == "pdf":
                return report_pdf(doc, self.router), "application/pdf", f"tip-report-{row.id}.pdf"
            body = doc.model_dump_json(indent=2).encode()
            return body, "application/json", f"tip-report-{row.id}.json"


def _union(current: Sequence[Any], new: Sequence[Any], limit: int) -> list[Any]:
    out = list(current)
    for item in new:
        if item not in out and len(out) < limit:
            out.append(item)
    return out


def _filters_dict(f: ReportFilters) -> dict[str, Any]:
    return {k: v for k, v in {
        "status": list(f.status) or None, "severity": f.severity, "category": f.category, "ward": f.ward,
        "age_min": f.age_min, "age_max": f.age_max, "urgent": f.urgent, "assigned": f.assigned,
    }.items() if v is not None}

