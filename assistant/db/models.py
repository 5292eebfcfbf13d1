"""Typed SQLAlchemy models. Tables are singular snake case, timestamps UTC.

The conversation is the unit of risk: it carries the running risk state that
the risk stage reads and updates on every message. Platform user ids are
never stored: only ``user_pseudonym``, a keyed hash (see ``assistant.pseudonym``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from assistant.crypto import EncryptedText

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random 128-bit identifier, hard to guess (it addresses a conversation)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(16))
    user_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Running risk of the whole conversation (never lowered by a later message).
    risk_severity: Mapped[int] = mapped_column(Integer, default=0)
    risk_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    needs_followup: Mapped[bool] = mapped_column(Boolean, default=False)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        order_by="Message.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "platform_message_id", name="uq_message_platform_id"),
        Index("ix_message_conversation_created", "conversation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversation.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    channel: Mapped[str] = mapped_column(String(16))
    user_pseudonym: Mapped[str | None] = mapped_column(String(64))
    audience: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(EncryptedText)  # encrypted at rest (assistant.crypto)
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    # Internal assessment of a user message; never exposed by the public API.
    severity: Mapped[int | None] = mapped_column(Integer)
    categories: Mapped[dict[str, float] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
