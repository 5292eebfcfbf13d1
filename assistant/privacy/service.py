"""Consent records, rights requests (export / delete) and the retention job.

Retention (``python -m assistant retention run [--dry-run]``, and the delivery
worker once per ``privacy.retention_interval_hours``):

- a conversation WITHOUT a tip report is purged once it has been idle for
  ``privacy.conversation_retention_days`` (default 30);
- a report that is closed, dismissed or merged is purged, with its
  conversation, ``privacy.report_legal_hold_days`` after it closed; an open
  report is never purged;
- each purge writes one ``ConversationPurged`` / ``TipReportPurged`` audit entry
  (ids and counts only, no content).

Consent (``add_consent``) is written by the chat service in the SAME transaction
as the turn that creates the conversation (web widget) or, on Zalo/Messenger,
copied from the channel user's acceptance of the notice into each of the user's
conversations (``assistant/channels``); see docs/privacy.md.

Deletion by the child (one-time code) never removes a conversation that has a
report: the report is under legal hold. A code used inside a channel must belong
to a conversation of the same channel user (``owner``); on the web the code alone
is the proof. Deletion by an admin on a parent's
request records the reason; a conversation with a report needs a supervisor
who confirms ``override_legal_hold``.

Errors::

    AssistantError > PrivacyError > CodeInvalid (404) | LegalHold (409) | ConsentRequired (422)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from assistant.auth import Principal
from assistant.db import Conversation, Database, Message
from assistant.db.models import utcnow
from assistant.errors import AssistantError
from assistant.privacy.models import ConsentRecord, RightsCode
from assistant.privacy.pii import redact
from assistant.settings import PrivacySettings

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
CLOSED_STATUSES = ("closed", "dismissed", "merged")

Owner = tuple[str, str]
"""``(channel, user pseudonym)`` of the channel user redeeming a code."""


class PrivacyError(AssistantError):
    status_code = 400
    code = "privacy_error"


class CodeInvalid(PrivacyError):
    status_code = 404
    code = "code_invalid"


class LegalHold(PrivacyError):
    status_code = 409
    code = "legal_hold"


class ConsentRequired(PrivacyError):
    status_code = 422
    code = "consent_required"


def _hash(code: str) -> str:
    normalized = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(b"rights-code:" + normalized.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def notice_for(audience: str) -> str:
    return "privacy-notice-parent" if audience == "parent" else "privacy-notice-child"


def add_consent(
    session: Session,
    conversation_id: str,
    channel: str,
    audience: str,
    version: str,
    given_at: datetime | None = None,
    once: bool = False,
) -> ConsentRecord | None:
    """Record in ``session`` that the notice ``version`` for ``audience`` was accepted.

    The caller's transaction decides: written with the turn (or the channel user's
    acceptance) or not at all. With ``once``, nothing is added when the
    conversation already holds a record of the same notice and version.
    """
    notice = notice_for(audience)
    version = version[:16]
    if once and session.scalar(
        select(exists().where(
            ConsentRecord.conversation_id == conversation_id,
            ConsentRecord.notice == notice,
            ConsentRecord.notice_version == version,
        ))
    ):
        return None
    row = ConsentRecord(
        conversation_id=conversation_id,
        channel=channel,
        audience=audience,
        notice=notice,
        notice_version=version,
        given_at=given_at or utcnow(),
    )
    session.add(row)
    return row


@dataclass
class PurgeReport:
    dry_run: bool
    conversations: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    messages: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "conversations": len(self.conversations),
            "reports": len(self.reports),
            "messages": self.messages,
        }


class PrivacyService:
    def __init__(self, db: Database, settings: PrivacySettings) -> None:
        self.db = db
        self.settings = settings

    # ------------------------------------------------------------------ consent
    def record_consent(
        self, session: Session, conversation_id: str, channel: str, audience: str, version: str
    ) -> ConsentRecord:
        row = add_consent(session, conversation_id, channel, audience, version)
        assert row is not None
        return row

    def consents(self, conversation_id: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(ConsentRecord).where(ConsentRecord.conversation_id == conversation_id)
            ).all()
            return [
                {
                    "notice": r.notice,
                    "notice_version": r.notice_version,
                    "channel": r.channel,
                    "given_at": _aware(r.given_at).isoformat(),
                }
                for r in rows
            ]

    # ------------------------------------------------------------------ rights by code
    def issue_code(self, conversation_id: str, now: datetime | None = None) -> tuple[str, datetime]:
        """A one-time code for the child's own conversation (shown once, stored hashed)."""
        now = now or utcnow()
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        expires = now + timedelta(minutes=self.settings.rights_code_minutes)
        with self.db.session() as session:
            if session.get(Conversation, conversation_id) is None:
                raise CodeInvalid(
                    "Không tìm thấy cuộc trò chuyện này.", "Unknown conversation_id."
                )
            session.add(
                RightsCode(
                    code_hash=_hash(code), conversation_id=conversation_id, created_at=now, expires_at=expires
                )
            )
        return code, expires

    def _redeem(self, session: Session, code: str, now: datetime, owner: Owner | None = None) -> str:
        row = session.get(RightsCode, _hash(code), with_for_update=True)
        invalid = row is None or row.used_at is not None or _aware(row.expires_at) < now
        if row is not None and not invalid and owner is not None:
            # Inside a channel the code must be one of this user's own (not spent otherwise).
            conv = session.get(Conversation, row.conversation_id)
            invalid = conv is None or (conv.channel, conv.user_pseudonym) != owner
        if row is None or invalid:
            raise CodeInvalid(
                "Mã không đúng, đã dùng hoặc đã hết hạn. Em hãy lấy mã mới trong khung chat nhé.",
                "The code is unknown, already used or expired.",
            )
        row.used_at = now
        return row.conversation_id

    def export_by_code(self, code: str, owner: Owner | None = None) -> dict[str, Any]:
        """The child's own conversation; ``owner`` = ``(channel, pseudonym)`` when asked inside a channel."""
        now = utcnow()
        with self.db.session() as session:
            conversation_id = self._redeem(session, code, now, owner)
            data = self._export(session, conversation_id, redacted=False)
            self._audit(session, "ConversationExported", None, conversation_id,
                        {"by": "child_code", "via": owner[0] if owner else "web"})
            return data

    def delete_by_code(self, code: str, owner: Owner | None = None) -> dict[str, Any]:
        now = utcnow()
        with self.db.session() as session:
            conversation_id = self._redeem(session, code, now, owner)
            if self._has_report(session, conversation_id):
                # The code stays spent; nothing is removed.
                self._audit(session, "ConversationDeletionRefused", None, conversation_id,
                            {"by": "child_code", "via": owner[0] if owner else "web", "reason": "legal_hold"})
                session.commit()
                raise LegalHold(
                    "Cuộc trò chuyện này đang được người lớn bảo vệ trẻ em xử lý nên chưa thể xóa. "
                    "Em có thể gọi 111 (miễn phí) để hỏi thêm.",
                    "This conversation is linked to a report under legal hold and cannot be deleted.",
                )
            counts = self._delete_conversation(session, conversation_id)
            self._audit(session, "ConversationDeleted", None, conversation_id,
                        {"by": "child_code", "via": owner[0] if owner else "web", **counts})
            return {"deleted": True, **counts}

    # ------------------------------------------------------------------ rights by admin
    def export_by_admin(self, principal: Principal, conversation_id: str, reason: str) -> dict[str, Any]:
        """An export for a parent's request: transcripts redacted, the reason audited."""
        self._require_staff(principal)
        with self.db.session() as session:
            if session.get(Conversation, conversation_id) is None:
                raise CodeInvalid("Không tìm thấy cuộc trò chuyện.", "Unknown conversation_id.")
            data = self._export(session, conversation_id, redacted=True)
            self._audit(session, "ConversationExported", principal, conversation_id,
                        {"by": "admin", "reason": reason[:500]})
            return data

    def delete_by_admin(
        self, principal: Principal, conversation_id: str, reason: str, override_legal_hold: bool = False
    ) -> dict[str, Any]:
        self._require_staff(principal)
        with self.db.session() as session:
            if session.get(Conversation, conversation_id) is None:
                raise CodeInvalid("Không tìm thấy cuộc trò chuyện.", "Unknown conversation_id.")
            if self._has_report(session, conversation_id) and not (
                override_legal_hold and principal.role == "supervisor"
            ):
                raise LegalHold(
                    "Cuộc trò chuyện có báo cáo đang được lưu giữ theo quy định; chỉ giám sát viên "
                    "mới có thể xóa (override_legal_hold).",
                    "A report under legal hold is linked: only a supervisor with override_legal_hold may delete.",
                )
            counts = self._delete_conversation(session, conversation_id)
            self._audit(session, "ConversationDeleted", principal, conversation_id,
                        {"by": principal.role, "reason": reason[:500],
                         "override_legal_hold": override_legal_hold, **counts})
            return {"deleted": True, **counts}

    # ------------------------------------------------------------------ retention
    def run_retention(self, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
        from escalation.models import TipReportRow

        now = now or utcnow()
        result = PurgeReport(dry_run=dry_run)
        conv_cutoff = now - timedelta(days=self.settings.conversation_retention_days)
        hold_cutoff = now - timedelta(days=self.settings.report_legal_hold_days)
        with self.db.session() as session:
            stale = session.scalars(
                select(Conversation.id).where(
                    Conversation.updated_at < conv_cutoff,
                    ~exists().where(TipReportRow.conversation_id == Conversation.id),
                )
            ).all()
            expired_reports = session.execute(
                select(TipReportRow.id, TipReportRow.conversation_id).where(
                    TipReportRow.status.in_(CLOSED_STATUSES),
                    TipReportRow.closed_at.is_not(None),
                    TipReportRow.closed_at < hold_cutoff,
                )
            ).all()
            # A conversation goes only when EVERY report on it has passed the hold.
            for conversation_id in sorted({c for _, c in expired_reports}):
                open_or_held = session.scalar(
                    select(exists().where(
                        TipReportRow.conversation_id == conversation_id,
                        ~(
                            TipReportRow.status.in_(CLOSED_STATUSES)
                            & TipReportRow.closed_at.is_not(None)
                            & (TipReportRow.closed_at < hold_cutoff)
                        ),
                    ))
                )
                if open_or_held:
                    continue
                reports = [r for r, c in expired_reports if c == conversation_id]
                result.reports.extend(reports)
                result.conversations.append(conversation_id)
                if not dry_run:
                    counts = self._delete_conversation(session, conversation_id)
                    result.messages += counts["messages"]
                    for report_id in reports:
                        self._audit(session, "TipReportPurged", None, report_id,
                                    {"conversation_id": conversation_id, "rule": "legal_hold_ended"},
                                    object_type="tip_report")
                    self._audit(session, "ConversationPurged", None, conversation_id,
                                {"rule": "legal_hold_ended", **counts})
            for conversation_id in stale:
                result.conversations.append(conversation_id)
                if dry_run:
                    continue
                counts = self._delete_conversation(session, conversation_id)
                result.messages += counts["messages"]
                self._audit(session, "ConversationPurged", None, conversation_id,
                            {"rule": "retention", "days": self.settings.conversation_retention_days, **counts})
        return result

    # ------------------------------------------------------------------ helpers
    def _require_staff(self, principal: Principal) -> None:
        if principal.role not in ("admin", "supervisor"):
            from assistant.auth import AccessDenied

            raise AccessDenied(
                "Chỉ quản trị viên hoặc giám sát viên được xử lý yêu cầu của phụ huynh.",
                "Only admins and supervisors handle a parent's request.",
            )

    def _has_report(self, session: Session, conversation_id: str) -> bool:
        from escalation.models import TipReportRow

        return bool(session.scalar(select(exists().where(TipReportRow.conversation_id == conversation_id))))

    def _export(self, session: Session, conversation_id: str, redacted: bool) -> dict[str, Any]:
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        messages = session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        ).all()
        consents = session.scalars(
            select(ConsentRecord).where(ConsentRecord.conversation_id == conversation_id)
        ).all()
        return {
            "conversation_id": conv.id,
            "channel": conv.channel,
            "audience": conv.audience,
            "created_at": _aware(conv.created_at).isoformat(),
            "redacted": redacted,
            "messages": [
                {
                    "role": m.role,
                    "text": redact(m.text) if redacted else m.text,
                    "at": _aware(m.created_at).isoformat(),
                }
                for m in messages
            ],
            "consents": [
                {"notice": c.notice, "notice_version": c.notice_version, "given_at": _aware(c.given_at).isoformat()}
                for c in consents
            ],
        }

    def _delete_conversation(self, session: Session, conversation_id: str) -> dict[str, int]:
        """Delete a conversation and everything that hangs on it (reports included)."""
        from assistant.channels.models import ChannelUser
        from escalation.models import OutboxMessage, TipReportRow

        report_ids = session.scalars(
            select(TipReportRow.id).where(TipReportRow.conversation_id == conversation_id)
        ).all()
        n_messages = len(session.scalars(
            select(Message.id).where(Message.conversation_id == conversation_id)
        ).all())
        if report_ids:
            session.execute(delete(OutboxMessage).where(OutboxMessage.report_id.in_(report_ids)))
            session.execute(
                update(TipReportRow)
                .where(TipReportRow.merged_into_id.in_(report_ids))
                .values(merged_into_id=None)
            )
            session.execute(delete(TipReportRow).where(TipReportRow.id.in_(report_ids)))
        session.execute(
            update(ChannelUser)
            .where(ChannelUser.conversation_id == conversation_id)
            .values(conversation_id=None)
        )
        session.execute(delete(Message).where(Message.conversation_id == conversation_id))
        session.execute(delete(RightsCode).where(RightsCode.conversation_id == conversation_id))
        session.execute(delete(ConsentRecord).where(ConsentRecord.conversation_id == conversation_id))
        session.execute(delete(Conversation).where(Conversation.id == conversation_id))
        return {"messages": n_messages, "reports": len(report_ids)}

    def _audit(
        self,
        session: Session,
        action: str,
        principal: Principal | None,
        object_id: str,
        details: dict[str, Any],
        object_type: str = "conversation",
    ) -> None:
        from escalation import audit

        audit.record(session, action, principal, object_type, object_id, details)
