"""Database access of the channels: users, the event inbox, OA credentials.

Every method is one short unit of work. Duplicates are detected by the unique
constraints themselves (insert, and an ``IntegrityError`` means "seen before"),
which is race-free across threads, processes and replicas on both databases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from assistant.channels.base import InboundMessage
from assistant.channels.models import ChannelEvent, ChannelUser, as_utc
from assistant.db import Conversation, Database, Message
from assistant.db.models import utcnow
from assistant.privacy.service import add_consent

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 255


@dataclass(frozen=True)
class UserState:
    """A snapshot of ``channel_user`` (safe to use outside the session)."""

    id: int
    channel: str
    user_pseudonym: str
    platform_user_id: str | None
    audience: str | None
    audience_asked_at: datetime | None
    conversation_id: str | None
    last_user_message_at: datetime | None
    last_platform_message_id: str | None
    replies_since_user_message: int
    quota_notice_sent: bool
    notice_version: str | None = None
    notice_shown_at: datetime | None = None
    consent_version: str | None = None
    consent_at: datetime | None = None

    @classmethod
    def of(cls, row: ChannelUser) -> UserState:
        return cls(
            id=row.id,
            channel=row.channel,
            user_pseudonym=row.user_pseudonym,
            platform_user_id=row.platform_user_id,
            audience=row.audience,
            audience_asked_at=as_utc(row.audience_asked_at),
            conversation_id=row.conversation_id,
            last_user_message_at=as_utc(row.last_user_message_at),
            last_platform_message_id=row.last_platform_message_id,
            replies_since_user_message=row.replies_since_user_message,
            quota_notice_sent=row.quota_notice_sent,
            notice_version=row.notice_version,
            notice_shown_at=as_utc(row.notice_shown_at),
            consent_version=row.consent_version,
            consent_at=as_utc(row.consent_at),
        )

    @property
    def awaiting_audience(self) -> bool:
        return self.audience is None and self.audience_asked_at is not None

    def consented(self, version: str) -> bool:
        """The user accepted this version of the privacy notice."""
        return self.consent_version == version and self.consent_at is not None

    def awaiting_consent(self, version: str) -> bool:
        """This version of the notice was delivered and not yet accepted."""
        return (
            self.notice_version == version and self.notice_shown_at is not None and not self.consented(version)
        )


@dataclass(frozen=True)
class EventState:
    id: int
    channel: str
    event_key: str
    kind: str
    user_pseudonym: str
    platform_message_id: str | None
    text: str
    payload: str | None
    attachment_types: tuple[str, ...]
    received_at: datetime
    sent_at: datetime | None
    attempts: int

    @classmethod
    def of(cls, row: ChannelEvent) -> EventState:
        received = as_utc(row.received_at)
        assert received is not None
        return cls(
            id=row.id,
            channel=row.channel,
            event_key=row.event_key,
            kind=row.kind,
            user_pseudonym=row.user_pseudonym,
            platform_message_id=row.platform_message_id,
            text=row.text or "",
            payload=row.payload,
            attachment_types=tuple(row.attachment_types or ()),
            received_at=received,
            sent_at=as_utc(row.sent_at),
            attempts=row.attempts,
        )


class ChannelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users -------------------------------------------------------------------
    def ensure_user(self, channel: str, pseudonym: str, platform_user_id: str) -> int:
        """The user's row id; created on first contact, the raw id refreshed (replies need it)."""
        for _ in range(2):
            with self.db.session() as s:
                row = s.scalars(
                    select(ChannelUser).where(
                        ChannelUser.channel == channel, ChannelUser.user_pseudonym == pseudonym
                    )
                ).one_or_none()
                if row is not None:
                    if row.platform_user_id != platform_user_id:
                        row.platform_user_id = platform_user_id
                    return row.id
            try:
                with self.db.session() as s:
                    row = ChannelUser(
                        channel=channel,
                        user_pseudonym=pseudonym,
                        platform_user_id=platform_user_id,
                        replies_since_user_message=0,
                        quota_notice_sent=False,
                    )
                    s.add(row)
                    s.flush()
                    return row.id
            except IntegrityError:
                continue  # created by a concurrent request: read it again
        raise RuntimeError("could not create the channel user")  # pragma: no cover

    def user(self, channel: str, pseudonym: str) -> UserState | None:
        with self.db.session() as s:
            row = s.scalars(
                select(ChannelUser).where(ChannelUser.channel == channel, ChannelUser.user_pseudonym == pseudonym)
            ).one_or_none()
            return UserState.of(row) if row is not None else None

    def user_of_conversation(self, conversation_id: str) -> UserState | None:
        with self.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None or conv.user_pseudonym is None:
                return None
            row = s.scalars(
                select(ChannelUser).where(
                    ChannelUser.channel == conv.channel, ChannelUser.user_pseudonym == conv.user_pseudonym
                )
            ).one_or_none()
            return UserState.of(row) if row is not None else None

    def note_user_message(self, user_id: int, at: datetime, platform_message_id: str | None) -> UserState:
        """A new user message: the reply windows and the free-reply count start again."""
        with self.db.session() as s:
            row = s.get_one(ChannelUser, user_id)
            row.last_user_message_at = at
            if platform_message_id is not None:
                row.last_platform_message_id = platform_message_id
            row.replies_since_user_message = 0
            row.quota_notice_sent = False
            return UserState.of(row)

    def count_reply(self, user_id: int, quota_notice: bool = False) -> None:
        with self.db.session() as s:
            s.execute(
                update(ChannelUser)
                .where(ChannelUser.id == user_id)
                .values(replies_since_user_message=ChannelUser.replies_since_user_message + 1)
            )
            if quota_notice:
                s.execute(update(ChannelUser).where(ChannelUser.id == user_id).values(quota_notice_sent=True))

    def set_audience(self, user_id: int, audience: str) -> None:
        with self.db.session() as s:
            s.get_one(ChannelUser, user_id).audience = audience

    def mark_audience_asked(self, user_id: int, at: datetime) -> None:
        with self.db.session() as s:
            row = s.get_one(ChannelUser, user_id)
            if row.audience_asked_at is None:
                row.audience_asked_at = at

    def mark_notice_shown(self, user_id: int, version: str, at: datetime) -> None:
        with self.db.session() as s:
            row = s.get_one(ChannelUser, user_id)
            if row.notice_version != version or row.notice_shown_at is None:
                row.notice_version = version
                row.notice_shown_at = at

    def record_consent(
        self, user_id: int, version: str, audience: str, at: datetime, attach: bool = True
    ) -> UserState:
        """The user accepted the notice ``version``: kept on the user and, with ``attach``,
        in the same transaction recorded on the user's current conversation. Later
        conversations get it with their first turn (``ChatService(consent=...)``)."""
        with self.db.session() as s:
            row = s.get_one(ChannelUser, user_id)
            row.consent_version = version[:16]
            row.consent_at = at
            if attach and row.conversation_id is not None:
                conv = s.get(Conversation, row.conversation_id)
                if conv is not None and conv.user_pseudonym == row.user_pseudonym:
                    add_consent(s, conv.id, row.channel, audience, version, at, once=True)
            return UserState.of(row)

    def set_conversation(self, user_id: int, conversation_id: str) -> None:
        with self.db.session() as s:
            s.get_one(ChannelUser, user_id).conversation_id = conversation_id

    def forget_platform_id(self, user_id: int) -> None:
        with self.db.session() as s:
            row = s.get_one(ChannelUser, user_id)
            row.platform_user_id = None
            row.last_platform_message_id = None

    def expire_platform_ids(self, before: datetime) -> int:
        """Clear raw platform ids of users with no open reply window (no message since ``before``)."""
        with self.db.session() as s:
            result = s.execute(
                update(ChannelUser)
                .where(
                    ChannelUser.platform_user_id.is_not(None),
                    or_(
                        ChannelUser.last_user_message_at < before,
                        and_(ChannelUser.last_user_message_at.is_(None), ChannelUser.created_at < before),
                    ),
                )
                .values(platform_user_id=None, last_platform_message_id=None)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- events ------------------------------------------------------------------
    def record_event(self, message: InboundMessage, event_key: str, pseudonym: str) -> int | None:
        """Insert the event into the inbox; ``None`` when the platform sent it before."""
        try:
            with self.db.session() as s:
                row = ChannelEvent(
                    channel=message.channel,
                    event_key=event_key[:160],
                    kind=message.kind,
                    user_pseudonym=pseudonym,
                    platform_message_id=message.platform_message_id,
                    text=message.text or None,
                    payload=message.payload,
                    attachment_types=list(message.attachment_types) or None,
                    status="pending",
                    attempts=0,
                )
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def claim(self, event_id: int, lease: timedelta) -> EventState | None:
        """Take the event for processing (once, even with several workers or replicas)."""
        now = utcnow()
        with self.db.session() as s:
            result = s.execute(
                update(ChannelEvent)
                .where(
                    ChannelEvent.id == event_id,
                    or_(
                        ChannelEvent.status == "pending",
                        and_(ChannelEvent.status == "processing", ChannelEvent.claimed_at < now - lease),
                    ),
                )
                .values(status="processing", claimed_at=now, attempts=ChannelEvent.attempts + 1)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return EventState.of(s.get_one(ChannelEvent, event_id))

    def mark_sent(self, event_id: int) -> None:
        with self.db.session() as s:
            s.get_one(ChannelEvent, event_id).sent_at = utcnow()

    def finish(self, event_id: int, error: str | None = None) -> None:
        with self.db.session() as s:
            row = s.get_one(ChannelEvent, event_id)
            row.status = "done"
            row.processed_at = utcnow()
            row.error = error[:MAX_ERROR_CHARS] if error else None
            row.erase_content()

    def release(self, event_id: int, error: str, give_up: bool) -> None:
        """Processing failed: back to ``pending`` for a retry, or ``failed`` for good.

        A failed event keeps its text (it may be the only copy of a disclosure an
        operator must look at); the housekeeping erases it after the retention period.
        """
        with self.db.session() as s:
            row = s.get_one(ChannelEvent, event_id)
            row.status = "failed" if give_up else "pending"
            row.error = error[:MAX_ERROR_CHARS]

    def pending_events(self, channels: list[str], lease: timedelta) -> list[tuple[int, str]]:
        """Events acknowledged but not processed (after a restart), oldest first."""
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(ChannelEvent.id, ChannelEvent.user_pseudonym)
                .where(
                    ChannelEvent.channel.in_(channels),
                    or_(
                        ChannelEvent.status == "pending",
                        and_(ChannelEvent.status == "processing", ChannelEvent.claimed_at < now - lease),
                    ),
                )
                .order_by(ChannelEvent.received_at, ChannelEvent.id)
            ).all()
            return [(int(r[0]), str(r[1])) for r in rows]

    def purge_events(self, before: datetime) -> int:
        """Drop processed and failed events older than ``before`` (after the platforms stop retrying)."""
        with self.db.session() as s:
            result = s.execute(
                delete(ChannelEvent).where(
                    ChannelEvent.status.in_(("done", "failed")), ChannelEvent.received_at < before
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- messages ----------------------------------------------------------------
    def stored_reply(self, channel: str, platform_message_id: str) -> tuple[str, str] | None:
        """``(conversation_id, reply text)`` when this platform message was already handled."""
        with self.db.session() as s:
            user_msg = s.scalars(
                select(Message).where(
                    Message.channel == channel,
                    Message.platform_message_id == platform_message_id,
                    Message.role == "user",
                )
            ).one_or_none()
            if user_msg is None:
                return None
            reply = s.scalars(
                select(Message)
                .where(
                    Message.conversation_id == user_msg.conversation_id,
                    Message.id > user_msg.id,
                    Message.role == "assistant",
                )
                .order_by(Message.id)
                .limit(1)
            ).one_or_none()
            return (user_msg.conversation_id, reply.text if reply is not None else "")

    def conversation_severity(self, conversation_id: str) -> int | None:
        with self.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            return conv.risk_severity if conv is not None else None

    def add_counselor_message(self, conversation_id: str, text: str) -> None:
        """A counselor's reply sent through a channel, kept in the transcript."""
        with self.db.session() as s:
            conv = s.get_one(Conversation, conversation_id)
            s.add(
                Message(
                    conversation_id=conv.id,
                    role="counselor",
                    channel=conv.channel,
                    audience=conv.audience,
                    text=text,
                )
            )
