"""Typed SQLAlchemy models of the escalation part (same ``Base`` as the rest).

    tip_report         one report per case; ``content`` holds the editable document
    report_recipient   the agencies routing chose (counselor scope is checked on them)
    report_note        follow-up notes, append-only through the API
    outbox             what the worker must deliver (report deliveries and alerts)
    delivery_attempt   every attempt the worker made, with its outcome
    audit_log          append-only (database triggers refuse UPDATE and DELETE)

``open_conversation_id`` equals ``conversation_id`` while the report is open and
is NULL once it is closed, dismissed or merged: a unique constraint on it keeps
ONE open report per conversation, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

import assistant.auth  # noqa: F401 - the ``account`` table that reports refer to
from assistant.crypto import EncryptedJSON, EncryptedText
from assistant.db.models import Base, utcnow


class TipReportRow(Base):
    __tablename__ = "tip_report"
    __table_args__ = (Index("ix_tip_report_queue", "status", "urgent", "created_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id"), index=True)
    open_conversation_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    schema_version: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    severity: Mapped[int] = mapped_column(Integer)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    primary_category: Mapped[str] = mapped_column(String(32), index=True)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    ward_code: Mapped[int | None] = mapped_column(Integer, index=True)
    child_age: Mapped[int | None] = mapped_column(Integer)
    agency: Mapped[str | None] = mapped_column(String(64))
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    content: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)  # narrative + evidence, encrypted at rest
    assigned_to_id: Mapped[str | None] = mapped_column(ForeignKey("account.id"))
    decision: Mapped[str | None] = mapped_column(EncryptedText)
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("tip_report.id"))
    delivery_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    first_disclosure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    urgent_alerted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    recipients: Mapped[list[ReportRecipient]] = relationship(
        cascade="all, delete-orphan", order_by="ReportRecipient.position", lazy="selectin"
    )


class ReportRecipient(Base):
    __tablename__ = "report_recipient"

    report_id: Mapped[str] = mapped_column(ForeignKey("tip_report.id", ondelete="CASCADE"), primary_key=True)
    agency: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ReportNote(Base):
    __tablename__ = "report_note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("tip_report.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str | None] = mapped_column(String(26))
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # report | alert
    event_type: Mapped[str] = mapped_column(String(64))
    report_id: Mapped[str | None] = mapped_column(ForeignKey("tip_report.id"), index=True)
    report_version: Mapped[int | None] = mapped_column(Integer)
    destination: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(200))
    failure_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(64))
    sink: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | rejected | unavailable
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(26))
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
