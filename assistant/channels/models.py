"""Tables of the Zalo OA and Messenger channels (migration ``0003``).

What is stored, and why (see ``docs/channels.md`` for the privacy trade-off):

- ``channel_user``: one row per platform user, keyed by the pseudonym (a keyed
  hash of the platform id). It remembers the audience the user chose, the
  current conversation, the time of the user's last message (the platforms'
  reply windows), the Zalo free-reply count, and which privacy notice version
  was shown and accepted, when (migration ``0005``; copied into a
  ``consent_record`` of each of the user's conversations). The RAW platform id is kept
  here only, because the Send API and the OA API need it to reply; it is
  cleared when the user unfollows and once no reply window is open any more.
- ``channel_event``: the inbox of webhook events. Its unique key makes a
  platform's retry of the same event a no-op, and the row lets a restarted
  process finish an event it had acknowledged but not yet answered. The text of
  a pending event is erased as soon as the event is processed.
- ``channel_credential``: the rotating Zalo OA access and refresh tokens (a
  refresh token is single-use, so the new one must survive a restart).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from assistant.crypto import EncryptedText
from assistant.db.models import Base, utcnow


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: read every stored time as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ChannelUser(Base):
    __tablename__ = "channel_user"
    __table_args__ = (UniqueConstraint("channel", "user_pseudonym", name="uq_channel_user_pseudonym"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_pseudonym: Mapped[str] = mapped_column(String(64))
    # Raw platform id (PSID / Zalo user id): needed to send; cleared when no window is open.
    # Encrypted at rest; the ONLY column holding a raw platform id (docs/privacy.md).
    platform_user_id: Mapped[str | None] = mapped_column(EncryptedText("VARCHAR(128)"))
    audience: Mapped[str | None] = mapped_column(String(16))
    audience_asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversation.id", ondelete="SET NULL")
    )
    last_user_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Zalo: the user's last message id (replies quoting it use the free-reply quota).
    last_platform_message_id: Mapped[str | None] = mapped_column(String(128))
    replies_since_user_message: Mapped[int] = mapped_column(Integer, default=0)
    quota_notice_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The privacy notice: the version last shown (and when), the version accepted (and when).
    notice_version: Mapped[str | None] = mapped_column(String(16))
    notice_shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_version: Mapped[str | None] = mapped_column(String(16))
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ChannelEvent(Base):
    __tablename__ = "channel_event"
    __table_args__ = (
        UniqueConstraint("channel", "event_key", name="uq_channel_event_key"),
        Index("ix_channel_event_status_received", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16))
    user_pseudonym: Mapped[str] = mapped_column(String(64))
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    # Transient: erased once the event is processed (the message table keeps the turn).
    text: Mapped[str | None] = mapped_column(EncryptedText)
    payload: Mapped[str | None] = mapped_column(EncryptedText)
    attachment_types: Mapped[list[str] | None] = mapped_column(JSON)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def erase_content(self) -> None:
        self.text = None
        self.payload = None


class ChannelCredential(Base):
    __tablename__ = "channel_credential"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    access_token: Mapped[str] = mapped_column(EncryptedText)
    refresh_token: Mapped[str] = mapped_column(EncryptedText)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SHA-256 of the refresh token in the settings this row was seeded from: a new
    # token typed in the settings (the OA was authorized again) replaces the row.
    seed_fingerprint: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
