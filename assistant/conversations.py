"""The conversation store and the chat service that ties it to the pipeline.

A chat turn is read, judged and answered first; then the user's message, its
assessment, the reply, the conversation's running risk and, when given, the
consent to the privacy notice are written in ONE transaction, so a failure
leaves nothing half-written (never a conversation without its consent record,
never a consent record without its conversation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from assistant.db import Conversation, Database, Message
from assistant.db.models import new_id
from assistant.errors import NotFound
from assistant.pipeline import ChatPipeline, ChatTurn
from assistant.privacy.service import add_consent
from assistant.responder import Reply
from assistant.risk.base import RiskAssessment

log = logging.getLogger(__name__)


@dataclass
class ChatResult:
    conversation_id: str
    reply: Reply
    assessment: RiskAssessment
    conversation_severity: int
    created: bool


@dataclass(frozen=True)
class Consent:
    """The privacy notice the user accepted, recorded with the turn (``consent_record``).

    ``given_at`` defaults to the time of the turn; a channel user's earlier
    acceptance is copied into each new conversation with its own time.
    """

    notice_version: str
    given_at: datetime | None = None


TurnHook = Callable[[Session, Conversation, Message, RiskAssessment], None]
"""Called inside the write transaction (e.g. escalation opens a tip report there)."""


class ConversationStore:
    def get(self, session: Session, conversation_id: str) -> Conversation | None:
        return session.get(Conversation, conversation_id)

    def recent_user_texts(self, session: Session, conversation_id: str, limit: int) -> list[str]:
        rows = session.scalars(
            select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.role == "user")
            .order_by(Message.id.desc())
            .limit(limit)
        ).all()
        return list(reversed(rows))


class ChatService:
    def __init__(
        self,
        db: Database,
        pipeline: ChatPipeline,
        history_turns: int = 8,
        hooks: list[TurnHook] | None = None,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.store = ConversationStore()
        self.history_turns = history_turns
        self.hooks = list(hooks or [])

    def handle(
        self,
        text: str,
        audience: str,
        channel: str = "web",
        conversation_id: str | None = None,
        user_pseudonym: str | None = None,
        platform_message_id: str | None = None,
        consent: Consent | None = None,
    ) -> ChatResult:
        """One turn. ``consent`` is recorded in the turn's own transaction (once per
        conversation and notice version)."""
        history: list[str] = []
        conversation_severity = 0
        if conversation_id is not None:
            with self.db.session() as session:
                conv = self.store.get(session, conversation_id)
                if conv is None or conv.channel != channel:
                    raise NotFound(
                        "Không tìm thấy cuộc trò chuyện này. Hãy bắt đầu cuộc trò chuyện mới.",
                        "Unknown conversation_id; start a new conversation without it.",
                    )
                history = self.store.recent_user_texts(session, conversation_id, self.history_turns)
                conversation_severity = conv.risk_severity
        turn = ChatTurn(
            text=text,
            audience=audience,
            channel=channel,
            seed=conversation_id or text,
            history=history,
            conversation_severity=conversation_severity,
        )
        self.pipeline.run(turn)
        assert turn.assessment is not None and turn.reply is not None
        return self._store(turn, conversation_id, user_pseudonym, platform_message_id, consent)

    def continue_conversation(
        self,
        text: str,
        audience: str,
        channel: str,
        user_pseudonym: str,
        conversation_id: str | None = None,
        platform_message_id: str | None = None,
        consent: Consent | None = None,
    ) -> ChatResult:
        """A turn in the user's current conversation on a channel (Zalo, Messenger).

        Continues ``conversation_id`` only when it still exists and belongs to the
        same user on the same channel; otherwise (purged, or never started) a new
        conversation begins, so a channel user is never told "unknown conversation".
        """
        if conversation_id is not None:
            with self.db.session() as session:
                conv = self.store.get(session, conversation_id)
                if conv is None or conv.channel != channel or conv.user_pseudonym != user_pseudonym:
                    conversation_id = None
        return self.handle(
            text=text,
            audience=audience,
            channel=channel,
            conversation_id=conversation_id,
            user_pseudonym=user_pseudonym,
            platform_message_id=platform_message_id,
            consent=consent,
        )

    def _store(
        self,
        turn: ChatTurn,
        conversation_id: str | None,
        user_pseudonym: str | None,
        platform_message_id: str | None,
        consent: Consent | None = None,
    ) -> ChatResult:
        assessment, reply = turn.assessment, turn.reply
        assert assessment is not None and reply is not None
        with self.db.session() as session:
            conv = self.store.get(session, conversation_id) if conversation_id else None
            created = conv is None
            if conv is None:
                # With its id set here, a new conversation and its first two messages
                # are written by one flush: fewer statements while SQLite's write
                # lock is held (no INSERT then UPDATE of the conversation).
                conv = Conversation(
                    id=new_id(),
                    channel=turn.channel,
                    audience=turn.audience,
                    user_pseudonym=user_pseudonym,
                    risk_severity=0,
                    risk_state={},
                    needs_followup=False,
                )
                session.add(conv)
            conv.audience = turn.audience
            if consent is not None:
                add_consent(
                    session, conv.id, turn.channel, turn.audience, consent.notice_version,
                    consent.given_at, once=not created,
                )
            # The conversation's risk never drops: a later "ok cảm ơn" keeps it.
            conv.risk_severity = max(conv.risk_severity, assessment.severity)
            if assessment.severity == 2:
                conv.needs_followup = True
            user_msg = Message(
                conversation_id=conv.id,
                role="user",
                channel=turn.channel,
                user_pseudonym=user_pseudonym,
                audience=turn.audience,
                text=turn.text,
                platform_message_id=platform_message_id,
                severity=assessment.severity,
                categories=assessment.categories,
            )
            bot_msg = Message(
                conversation_id=conv.id,
                role="assistant",
                channel=turn.channel,
                audience=turn.audience,
                text=reply.text,
            )
            session.add_all([user_msg, bot_msg])
            session.flush()
            for hook in self.hooks:
                hook(session, conv, user_msg, assessment)
            result = ChatResult(conv.id, reply, assessment, conv.risk_severity, created)
        log.info(
            "chat turn stored",
            extra={
                "conversation_id": result.conversation_id,
                "channel": turn.channel,
                "audience": turn.audience,
                "reply_kind": reply.kind,
                "timings_ms": {k: round(v * 1000, 2) for k, v in turn.timings.items()},
            },
        )
        return result
