"""What happens to a Zalo or Messenger event after its signature is checked.

The webhook handler only calls ``accept``: each event is written to the
``channel_event`` inbox (its unique key drops a platform's retry of an event it
already sent) and handed to a background worker, so the platform gets its 200 at
once (Zalo allows 2 seconds). The worker then:

1. turns the platform user id into the pseudonym (keyed HMAC) and loads the user;
2. notes the user's message (the reply windows and Zalo's free replies restart);
3. answers the audience question ("Em là học sinh hay phụ huynh?", asked once),
   records the acceptance of the privacy notice, answers a privacy command
   ("mã dữ liệu", "xoá <mã>", ``assistant.channels.rights``: never a chat turn),
   or sends the kind note for an image (nothing of it is stored), or runs the
   message through ``ChatService`` - the same pipeline, risk assessment and
   escalation hooks as the web widget - in the user's current conversation;
4. sends the reply, within the platform's rules: Messenger replies with
   ``messaging_type=RESPONSE`` within 24 hours; Zalo quotes the user's message to
   use the free replies, keeps the last free one for the 111 details, and never
   drops a disclosure reply even when no free reply is left.

Events from one user are processed in order (one worker per user shard). A
failure is logged, counted and retried (the stored reply is re-sent, the turn is
never stored twice); a process that dies after acknowledging an event finishes
it at the next start (``start`` re-queues the inbox).

Privacy notice and consent (docs/privacy.md, "Rights and consent"): the notice
(``privacy_notice``, the version of the widget's notice) goes out with the first
reply that is not a disclosure reply, as one message with the audience question
and its buttons. Choosing a button, "Đồng ý", or simply writing on after the
notice was delivered is the acceptance the notice announces: recorded on the
channel user (version, time) and, in the turn's own transaction, as a
``consent_record`` of each of the user's conversations. The message that came
before the notice is answered all the same, and a disclosure is always assessed,
escalated and answered first (vital interest), consent or not.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from sqlalchemy.exc import IntegrityError

from assistant.channels.base import (
    Channel,
    DeliveryError,
    DeliveryRejected,
    DeliveryUnavailable,
    InboundMessage,
    OutboundMessage,
    QuickReply,
)
from assistant.channels.metrics import ChannelMetrics
from assistant.channels.rights import (
    CONSENT_PAYLOAD,
    PrivacyCommand,
    consent_answer,
    local_time,
    privacy_command,
)
from assistant.channels.store import ChannelStore, EventState, UserState
from assistant.conversations import ChatService, Consent
from assistant.db import Database
from assistant.db.models import utcnow
from assistant.metrics import Metrics
from assistant.privacy.service import CodeInvalid, LegalHold, PrivacyService
from assistant.prompts import PromptBook
from assistant.pseudonym import pseudonymize
from assistant.settings import ChannelsSettings, PrivacySettings
from assistant.text import fold_accents

log = logging.getLogger(__name__)

AUDIENCE_PAYLOADS = {"AUDIENCE_CHILD": "child", "AUDIENCE_PARENT": "parent"}
GET_STARTED_PAYLOADS = {"GET_STARTED", "GET_STARTED_PAYLOAD"}
# Typed answers to the audience question (accent-folded, lower case, no punctuation).
CHILD_ANSWERS = {
    "1", "hoc sinh", "em la hoc sinh", "minh la hoc sinh", "toi la hoc sinh", "la hoc sinh", "hs",
    "tre em", "em la tre em", "con", "em",
}
PARENT_ANSWERS = {
    "2", "phu huynh", "toi la phu huynh", "em la phu huynh", "minh la phu huynh", "la phu huynh", "ph",
    "bo me", "ba me", "cha me", "giao vien", "toi la giao vien", "thay co", "nguoi lon",
}
MESSENGER_WINDOW = timedelta(hours=24)  # RESPONSE messages
HUMAN_WINDOW = timedelta(days=7)  # Messenger HUMAN_AGENT tag; Zalo customer-service messages
EVENT_RETENTION = timedelta(days=7)  # longer than any platform retries an event
CLAIM_LEASE = timedelta(minutes=5)
HOUSEKEEPING_EVERY = timedelta(hours=1)
MAX_ATTEMPTS = 3
RETRY_DELAYS = (2.0, 15.0)

OutgoingKind = Literal[
    "reply", "disclosure", "audience_question", "greeting", "attachment_note", "quota_notice", "human",
    "privacy_notice", "privacy_code", "privacy",
]
# Raised when the platform is down, so the event is retried (the rest is logged and counted).
# A code-USE answer is not: the export or deletion is done and must not run twice.
RETRIED_KINDS = ("reply", "disclosure", "human", "privacy_code")
ZaloPlan = Literal["free", "notice_then_hold", "paid", "hold"]


def zalo_quota_plan(used: int, quota: int, free_window_open: bool, disclosure: bool) -> ZaloPlan:
    """How to send one more message to a Zalo user, given the free replies already used.

    The last free reply is kept for the 111 details, so a child is never left
    without the hotline; beyond the quota ordinary messages are held back, but a
    disclosure reply is always sent (as a paid message if it must).
    """
    remaining = quota - used if free_window_open else 0
    if remaining >= 2 or (remaining == 1 and disclosure):
        return "free"
    if remaining == 1:
        return "notice_then_hold"
    return "paid" if disclosure else "hold"


def audience_answer(text: str, payload: str | None, options: list[str]) -> str | None:
    """``child``/``parent`` when the message answers the audience question, else ``None``.

    Only quick-reply payloads and exact short answers count, so a real message
    ("học sinh bị đánh") always goes through the risk pipeline.
    """
    if payload in AUDIENCE_PAYLOADS:
        return AUDIENCE_PAYLOADS[payload]
    folded = " ".join(re.sub(r"[^\w\s]", " ", fold_accents(text).lower()).split())
    folded_options = [" ".join(re.sub(r"[^\w\s]", " ", fold_accents(o).lower()).split()) for o in options]
    if folded in CHILD_ANSWERS or (folded_options[:1] and folded == folded_options[0]):
        return "child"
    if folded in PARENT_ANSWERS or (len(folded_options) > 1 and folded == folded_options[1]):
        return "parent"
    return None


@dataclass(frozen=True)
class Outgoing:
    text: str
    kind: OutgoingKind
    quick_replies: tuple[QuickReply, ...] = ()
    must_send: bool = False  # a disclosure reply: never held back by a quota
    notice: bool = False  # carries the privacy notice (its delivery is recorded)


@dataclass(frozen=True)
class AcceptResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class SendOutcome:
    sent: bool
    reason: str
    platform_message_id: str | None = None


@dataclass
class _Budget:
    """Free replies used so far in this delivery (Zalo)."""

    used: int
    notice_sent: bool
    outcomes: list[SendOutcome] = field(default_factory=list)


class Dispatcher:
    """Runs jobs in the background, one thread per shard of users, so the events of
    one user are handled in order while different users proceed in parallel."""

    def __init__(self, workers: int) -> None:
        self._executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"channel-worker-{i}") for i in range(workers)
        ]
        self._pending = 0
        self._cond = threading.Condition()
        self._timers: set[threading.Timer] = set()
        self._closed = False

    def submit(self, key: str, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                log.warning("channel worker closed: job dropped (it stays in the inbox for the next start)")
                return
            self._pending += 1
        shard = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % len(self._executors)
        self._executors[shard].submit(self._run, job)

    def submit_later(self, key: str, delay: float, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            self._pending += 1

        def fire() -> None:
            with self._cond:
                self._timers.discard(timer)
                self._pending -= 1
            self.submit(key, job)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._cond:
            self._timers.add(timer)
        timer.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:  # noqa: BLE001 - a crashed job is logged; its event stays in the inbox
            log.exception("channel job crashed")
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        for executor in self._executors:
            executor.shutdown(wait=True)


class ChannelService:
    """Receives verified events of every enabled channel and answers them."""

    def __init__(
        self,
        db: Database,
        chat: ChatService,
        prompts: PromptBook,
        settings: ChannelsSettings,
        pseudonym_key: str,
        metrics: ChannelMetrics,
        channels: Mapping[str, Channel],
        app_metrics: Metrics | None = None,
        max_message_chars: int = 2000,
        clock: Callable[[], datetime] = utcnow,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        notice_version: str = "1",
        privacy: PrivacyService | None = None,
    ) -> None:
        self.db = db
        self.chat = chat
        self.prompts = prompts
        self.settings = settings
        self.metrics = metrics
        self.app_metrics = app_metrics
        self.channels = dict(channels)
        self.store = ChannelStore(db)
        self.max_message_chars = max_message_chars
        self.clock = clock
        self.retry_delays = retry_delays
        self.notice_version = notice_version  # the widget's (settings.widget.notice_version)
        self.privacy = privacy or PrivacyService(db, PrivacySettings())
        self._key = pseudonym_key
        self._dispatcher = Dispatcher(settings.workers)
        self._started = False
        self._housekeeping_at: datetime | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------
    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def start(self) -> None:
        """Finish what a previous process acknowledged but did not answer; housekeeping."""
        with self._lock:
            if self._started or not self.channels:
                return
            self._started = True
        pending = self.store.pending_events(list(self.channels), CLAIM_LEASE)
        for event_id, pseudonym in pending:
            self._dispatcher.submit(pseudonym, partial(self.process, event_id))
        if pending:
            log.warning("re-queued %d channel events left unprocessed", len(pending))
        self.housekeeping()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every accepted event is processed (tests and graceful shutdown)."""
        return self._dispatcher.wait_idle(timeout)

    def close(self) -> None:
        self._dispatcher.shutdown()
        for channel in self.channels.values():
            channel.close()

    def housekeeping(self) -> None:
        now = self.clock()
        self._housekeeping_at = now
        purged = self.store.purge_events(now - EVENT_RETENTION)
        expired = self.store.expire_platform_ids(now - HUMAN_WINDOW)
        if purged or expired:
            log.info(
                "channel housekeeping: %d old events purged, %d raw platform ids cleared",
                purged,
                expired,
                extra={"purged_events": purged, "cleared_platform_ids": expired},
            )

    # -- the webhook side ------------------------------------------------------------
    def pseudonym(self, channel: str, platform_user_id: str) -> str:
        return pseudonymize(self._key, channel, platform_user_id)

    def accept(self, messages: list[InboundMessage]) -> AcceptResult:
        """Record verified events and queue them; returns at once (the webhook's 200)."""
        accepted = duplicates = 0
        for message in messages:
            pseudonym = self.pseudonym(message.channel, message.sender_id)
            key = message.event_key or self._derived_key(message, pseudonym)
            self.store.ensure_user(message.channel, pseudonym, message.sender_id)
            event_id = self.store.record_event(message, key, pseudonym)
            if event_id is None:
                duplicates += 1
                self.metrics.events.labels(message.channel, message.kind, "duplicate").inc()
                log.info(
                    "%s event already received: ignored (platform retry or replay)",
                    message.channel,
                    extra={"channel": message.channel, "kind": message.kind},
                )
                continue
            accepted += 1
            self._dispatcher.submit(pseudonym, partial(self.process, event_id))
        return AcceptResult(accepted, duplicates)

    def _derived_key(self, message: InboundMessage, pseudonym: str) -> str:
        """Events without a platform id (follows, old postbacks): kind + pseudonym + time."""
        stamp = message.timestamp_ms if message.timestamp_ms is not None else int(self.clock().timestamp() * 1000)
        return f"{message.kind}:{pseudonym[:40]}:{stamp}"

    # -- the worker side -------------------------------------------------------------
    def process(self, event_id: int) -> None:
        event = self.store.claim(event_id, CLAIM_LEASE)
        if event is None:
            return  # done already, or taken by another worker
        channel = self.channels.get(event.channel)
        try:
            if channel is None:
                raise RuntimeError(f"channel {event.channel!r} is not enabled")
            problem = self._handle(channel, event)
        except Exception as exc:  # noqa: BLE001 - logged, counted, retried, then kept for an operator
            give_up = event.attempts >= MAX_ATTEMPTS
            self.store.release(event_id, f"{type(exc).__name__}: {exc}", give_up)
            self.metrics.events.labels(event.channel, event.kind, "failed" if give_up else "retry").inc()
            log.log(
                logging.ERROR if give_up or not isinstance(exc, DeliveryError) else logging.WARNING,
                "%s event %d failed (attempt %d of %d): %s",
                event.channel,
                event.id,
                event.attempts,
                MAX_ATTEMPTS,
                type(exc).__name__,
                exc_info=not isinstance(exc, DeliveryError),
                extra={"channel": event.channel, "kind": event.kind, "event_id": event.id},
            )
            if not give_up:
                delay = self.retry_delays[min(event.attempts, len(self.retry_delays)) - 1]
                self._dispatcher.submit_later(event.user_pseudonym, delay, partial(self.process, event_id))
            elif channel is not None and event.kind in ("text", "attachment", "postback"):
                self._last_resort(channel, event)
            return
        self.store.finish(event_id, problem)
        self.metrics.events.labels(event.channel, event.kind, "processed").inc()
        if self._housekeeping_at is None or self.clock() - self._housekeeping_at > HOUSEKEEPING_EVERY:
            self.housekeeping()

    def _handle(self, channel: Channel, event: EventState) -> str | None:
        """Handle one event; returns a note on what could not be delivered (kept on the event)."""
        user = self.store.user(event.channel, event.user_pseudonym)
        if user is None:
            raise RuntimeError("the event's user is missing")
        if event.kind == "unfollow":
            self.store.forget_platform_id(user.id)
            return None
        if event.kind == "follow":
            welcome = self._first_contact(user, user.audience or "child")
            return _problems(self._deliver(channel, user, welcome, welcome=True)) if welcome else None

        previous_message_at = user.last_user_message_at
        user = self.store.note_user_message(user.id, self._event_time(event), event.platform_message_id)
        audience = user.audience or "child"
        seed = user.user_pseudonym
        items: list[Outgoing] = []
        if event.kind == "attachment":
            # Nothing of the attachment is read or stored: a kind note only.
            self.metrics.events.labels(event.channel, "attachment", "not_stored").inc()
            items.append(Outgoing(self.prompts.text("attachment_note", audience, seed), "attachment_note"))

        awaiting_consent = user.awaiting_consent(self.notice_version)
        answer = audience_answer(event.text, event.payload, self.prompts.suggestions("audience_choice"))
        if answer is not None and (event.payload in AUDIENCE_PAYLOADS or user.awaiting_audience):
            self.store.set_audience(user.id, answer)
            if awaiting_consent:  # a button under the notice: "Bấm chọn ... là em đã đọc và đồng ý"
                self._accept(user, answer)
            items.append(Outgoing(self.prompts.text("greeting", answer, seed), "greeting"))
            return _problems(self._deliver(channel, user, items))
        if awaiting_consent and consent_answer(event.text, event.payload):
            self._accept(user, audience)
            items.append(Outgoing(self.prompts.text("privacy_thanks", audience, seed), "greeting"))
            return _problems(self._deliver(channel, user, items))
        command = privacy_command(event.text, event.payload)
        if command is not None:
            return self._privacy_command(channel, user, event, command, items)
        if event.kind == "postback" and (event.payload in GET_STARTED_PAYLOADS or not event.text.strip()):
            first = self._first_contact(user, audience)
            if not first or first[0].kind != "audience_question":
                items.append(Outgoing(self.prompts.text("greeting", audience, seed), "greeting"))
            items.extend(first)
            return self._deliver_and_mark(channel, user, items, event)

        text = event.text.strip()[: self.max_message_chars]
        if not text:
            return _problems(self._deliver(channel, user, items))

        if event.platform_message_id is not None:
            stored = self.store.stored_reply(event.channel, event.platform_message_id)
            if stored is not None:
                return self._resend(channel, user, event, stored, items)
        idle = timedelta(hours=self.settings.conversation_idle_hours)
        fresh = previous_message_at is not None and self.clock() - previous_message_at < idle
        # Writing on after the notice was delivered is the acceptance it announces: the
        # turn records it on its conversation in its own transaction, and the user's row
        # afterwards (the message's safety handling never waits for a consent write).
        implied = Consent(self.notice_version, self.clock()) if awaiting_consent else None
        consent = implied or (Consent(user.consent_version, user.consent_at) if user.consent_version else None)
        try:
            result = self.chat.continue_conversation(
                text=text,
                audience=audience,
                channel=event.channel,
                user_pseudonym=user.user_pseudonym,
                conversation_id=user.conversation_id if fresh else None,
                platform_message_id=event.platform_message_id,
                consent=consent,
            )
        except IntegrityError:
            # Stored by a concurrent attempt a moment ago: answer from what is stored.
            stored = self.store.stored_reply(event.channel, event.platform_message_id or "")
            if stored is None:
                raise
            return self._resend(channel, user, event, stored, items)
        self.store.set_conversation(user.id, result.conversation_id)
        if implied is not None:
            user = self._accept(user, audience, attach=False, at=implied.given_at)
        if self.app_metrics is not None:
            self.app_metrics.chat_messages.labels(event.channel, audience, result.reply.kind).inc()
            if result.assessment.escalate:
                self.app_metrics.escalations.labels(event.channel, str(result.assessment.severity)).inc()
        escalate = result.assessment.escalate
        items.append(Outgoing(result.reply.text, "disclosure" if escalate else "reply", must_send=escalate))
        if not escalate:  # after a disclosure reply nothing else is sent: the notice waits
            items.extend(self._first_contact(user, audience))
        return self._deliver_and_mark(channel, user, items, event)

    # -- consent and privacy commands ------------------------------------------------
    def _first_contact(self, user: UserState, audience: str) -> list[Outgoing]:
        """The audience question (asked once) and the privacy notice (until this version
        was delivered), as one message with the buttons under it."""
        version = self.notice_version
        needs_notice = not user.consented(version) and not user.awaiting_consent(version)
        if user.audience is None and user.audience_asked_at is None:
            return [self._audience_question(audience, notice=needs_notice)]
        if needs_notice:
            accept = self.prompts.suggestions("privacy_accept")[:1] or ["Đồng ý"]
            return [
                Outgoing(
                    self.prompts.text("privacy_notice", audience),
                    "privacy_notice",
                    (QuickReply(accept[0], CONSENT_PAYLOAD),),
                    notice=True,
                )
            ]
        return []

    def _accept(
        self, user: UserState, audience: str, attach: bool = True, at: datetime | None = None
    ) -> UserState:
        """Record the acceptance of the current notice on the user and, with ``attach``,
        on the current conversation (a turn records it on its own conversation)."""
        self.metrics.events.labels(user.channel, "consent", "recorded").inc()
        log.info("privacy notice accepted", extra={"channel": user.channel, "notice_version": self.notice_version})
        return self.store.record_consent(
            user.id, self.notice_version, audience, at or self.clock(), attach=attach
        )

    def _privacy_command(
        self, channel: Channel, user: UserState, event: EventState, command: PrivacyCommand, items: list[Outgoing]
    ) -> str | None:
        """Issue or use a one-time code. Nothing of it is stored as a message or logged."""
        audience = user.audience or "child"
        seed = user.user_pseudonym
        owner = (user.channel, user.user_pseudonym)
        kind: OutgoingKind = "privacy"
        if command.action == "code":
            kind = "privacy_code"
            try:
                if user.conversation_id is None:
                    raise CodeInvalid("no conversation", "The user has no current conversation.")
                code, expires = self.privacy.issue_code(user.conversation_id)
            except CodeInvalid:
                outcome, text = "nothing", self.prompts.text("privacy_nothing", audience, seed)
            else:
                outcome = "code"
                text = self.prompts.text("privacy_code", audience, seed).format(
                    code=code, minutes=self.privacy.settings.rights_code_minutes, until=local_time(expires)
                )
        else:
            assert command.code is not None
            try:
                if command.action == "delete":
                    self.privacy.delete_by_code(command.code, owner=owner)
                    outcome, text = "delete", self.prompts.text("privacy_deleted", audience, seed)
                else:
                    data = self.privacy.export_by_code(command.code, owner=owner)
                    outcome, text = "export", self._export_summary(data, audience, seed)
            except LegalHold:
                outcome, text = "legal_hold", self.prompts.text("privacy_legal_hold", audience, seed)
            except CodeInvalid:
                outcome, text = "invalid", self.prompts.text("privacy_code_invalid", audience, seed)
        self.metrics.events.labels(event.channel, "privacy", outcome).inc()
        log.info("privacy command answered", extra={"channel": event.channel, "outcome": outcome})
        items.append(Outgoing(text, kind))
        return self._deliver_and_mark(channel, user, items, event)

    def _export_summary(self, data: dict[str, object], audience: str, seed: str) -> str:
        messages = data.get("messages")
        roles = [m.get("role") for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        consents = data.get("consents")
        consent = ""
        if isinstance(consents, list) and consents and isinstance(consents[-1], dict):
            last = consents[-1]
            consent = self.prompts.text("privacy_export_consent", audience, seed).format(
                version=last.get("notice_version", ""),
                at=local_time(datetime.fromisoformat(str(last.get("given_at")))),
            )
        text = self.prompts.text("privacy_export", audience, seed).format(
            started=local_time(datetime.fromisoformat(str(data.get("created_at")))),
            user_messages=roles.count("user"),
            replies=len(roles) - roles.count("user"),
            consent=consent,
        )
        return re.sub(r"[ \t]+\n", "\n", text).strip()

    def _last_resort(self, channel: Channel, event: EventState) -> None:
        """The message could not be answered: still give the user the 111 hotline (best effort)."""
        user = self.store.user(event.channel, event.user_pseudonym)
        if user is None or event.sent_at is not None:
            return
        text = self.prompts.text("no_answer", user.audience or "child", user.user_pseudonym)
        try:
            outcomes = self._deliver(channel, user, [Outgoing(text, "reply", must_send=True)])
        except DeliveryError as exc:
            log.error("%s: the 111 fallback could not be sent either: %s", event.channel, type(exc).__name__)
            return
        if any(o.sent for o in outcomes):
            self.store.mark_sent(event.id)
            self.metrics.sent.labels(event.channel, "fallback_111").inc()

    def _resend(
        self,
        channel: Channel,
        user: UserState,
        event: EventState,
        stored: tuple[str, str],
        items: list[Outgoing],
    ) -> str | None:
        """The turn is stored already (a retry after a crash): re-send its reply if it never left."""
        conversation_id, reply = stored
        self.store.set_conversation(user.id, conversation_id)
        if event.sent_at is not None or not reply:
            return None
        severity = self.store.conversation_severity(conversation_id) or 0
        items.append(Outgoing(reply, "disclosure" if severity >= 3 else "reply", must_send=severity >= 3))
        return self._deliver_and_mark(channel, user, items, event)

    def _deliver_and_mark(
        self, channel: Channel, user: UserState, items: list[Outgoing], event: EventState
    ) -> str | None:
        outcomes = self._deliver(channel, user, items)
        if any(o.sent for o in outcomes):
            self.store.mark_sent(event.id)
        return _problems(outcomes)

    def _audience_question(self, audience: str, notice: bool = False) -> Outgoing:
        titles = self.prompts.suggestions("audience_choice")
        options = tuple(QuickReply(t, p) for t, p in zip(titles, AUDIENCE_PAYLOADS, strict=False))
        text = self.prompts.text("ask_audience", audience)
        if notice:
            text = self.prompts.text("privacy_notice", audience) + "\n\n" + text
        return Outgoing(text, "audience_question", options, notice=notice)

    def _event_time(self, event: EventState) -> datetime:
        return min(self.clock(), event.received_at)

    # -- sending -------------------------------------------------------------------
    def _deliver(
        self,
        channel: Channel,
        user: UserState,
        items: list[Outgoing],
        human: bool = False,
        welcome: bool = False,
    ) -> list[SendOutcome]:
        """Send ``items`` in order within the platform's windows and quotas.

        A ``DeliveryUnavailable`` on the main reply (or a disclosure reply) is
        raised, so the event is retried; anything else is logged, counted and
        reported in the outcomes.
        """
        budget = _Budget(user.replies_since_user_message, user.quota_notice_sent)
        for item in items:
            try:
                outcome = self._send_one(channel, user, item, budget, human, welcome)
                budget.outcomes.append(outcome)
                if outcome.sent and item.kind == "audience_question":
                    self.store.mark_audience_asked(user.id, self.clock())
                if outcome.sent and item.notice:
                    self.store.mark_notice_shown(user.id, self.notice_version, self.clock())
            except DeliveryUnavailable:
                if item.kind in RETRIED_KINDS:
                    raise
                self.metrics.not_sent.labels(channel.name, "unavailable").inc()
                budget.outcomes.append(SendOutcome(False, f"{item.kind}: platform unavailable"))
            except DeliveryRejected as exc:
                self.metrics.not_sent.labels(channel.name, "rejected").inc()
                log.warning(
                    "%s refused a %s message: %s",
                    channel.name,
                    item.kind,
                    exc,
                    extra={"channel": channel.name, "kind": item.kind, "code": exc.code},
                )
                budget.outcomes.append(SendOutcome(False, f"{item.kind}: {type(exc).__name__} {exc.code}"))
        return budget.outcomes

    def _send_one(
        self,
        channel: Channel,
        user: UserState,
        item: Outgoing,
        budget: _Budget,
        human: bool,
        welcome: bool,
    ) -> SendOutcome:
        if not user.platform_user_id:
            return self._held(channel, item, "no_platform_id")
        now = self.clock()
        since = now - user.last_user_message_at if user.last_user_message_at is not None else None
        if channel.name == "zalo":
            return self._send_zalo(channel, user, item, budget, since, welcome)
        if not welcome:
            window = HUMAN_WINDOW if human else MESSENGER_WINDOW
            if since is None or since > window:
                return self._held(channel, item, "window_closed")
        message = OutboundMessage(user.platform_user_id, item.text, item.quick_replies, human=human)
        sent = channel.send(message)
        self.metrics.sent.labels(channel.name, item.kind).inc()
        return SendOutcome(True, item.kind, sent.platform_message_id)

    def _send_zalo(
        self,
        channel: Channel,
        user: UserState,
        item: Outgoing,
        budget: _Budget,
        since: timedelta | None,
        welcome: bool,
    ) -> SendOutcome:
        assert user.platform_user_id is not None
        zalo = self.settings.zalo
        if welcome:  # after a follow: the OA's welcome messages, not a reply
            sent = channel.send(OutboundMessage(user.platform_user_id, item.text, item.quick_replies))
            self.metrics.sent.labels(channel.name, item.kind).inc()
            return SendOutcome(True, item.kind, sent.platform_message_id)
        if since is None or since > HUMAN_WINDOW:
            return self._held(channel, item, "window_closed")
        free_open = since <= timedelta(hours=zalo.free_reply_window_hours) and bool(user.last_platform_message_id)
        plan = zalo_quota_plan(budget.used, zalo.free_reply_quota, free_open, item.must_send)
        if plan == "notice_then_hold":
            if not budget.notice_sent:
                audience = user.audience or "child"
                notice = self.prompts.text("quota_111", audience, user.user_pseudonym)
                channel.send(OutboundMessage(user.platform_user_id, notice, reply_to=user.last_platform_message_id))
                budget.used += 1
                budget.notice_sent = True
                self.store.count_reply(user.id, quota_notice=True)
                self.metrics.sent.labels(channel.name, "quota_notice").inc()
                log.info("zalo free replies nearly spent: 111 details sent", extra={"channel": "zalo"})
            return self._held(channel, item, "quota")
        if plan == "hold":
            return self._held(channel, item, "quota")
        reply_to = user.last_platform_message_id if plan == "free" else None
        sent = channel.send(OutboundMessage(user.platform_user_id, item.text, item.quick_replies, reply_to=reply_to))
        budget.used += 1
        self.store.count_reply(user.id)
        self.metrics.sent.labels(channel.name, item.kind if plan == "free" else f"{item.kind}_paid").inc()
        if plan == "paid":
            log.warning(
                "zalo free replies spent: a disclosure reply was sent as a paid message",
                extra={"channel": "zalo", "kind": item.kind},
            )
        return SendOutcome(True, item.kind, sent.platform_message_id)

    def _held(self, channel: Channel, item: Outgoing, reason: str) -> SendOutcome:
        self.metrics.not_sent.labels(channel.name, reason).inc()
        log.warning(
            "%s %s message not sent: %s",
            channel.name,
            item.kind,
            reason,
            extra={"channel": channel.name, "kind": item.kind, "reason": reason},
        )
        return SendOutcome(False, f"{item.kind}: {reason}")

    # -- the console side ------------------------------------------------------------
    def send_human_reply(self, conversation_id: str, text: str) -> SendOutcome:
        """A counselor's message to the user of a Zalo or Messenger conversation.

        Messenger: tagged ``HUMAN_AGENT``, possible up to 7 days after the user's
        last message. Zalo: the same quota rule as the bot, where a conversation
        with a disclosure (severity >= 3) is never held back. Sent messages are
        added to the transcript with the role ``counselor``.
        """
        text = text.strip()
        if not text:
            return SendOutcome(False, "empty")
        user = self.store.user_of_conversation(conversation_id)
        if user is None:
            return SendOutcome(False, "not_a_channel_conversation")
        channel = self.channels.get(user.channel)
        if channel is None:
            return SendOutcome(False, "channel_disabled")
        severity = self.store.conversation_severity(conversation_id) or 0
        try:
            outcomes = self._deliver(channel, user, [Outgoing(text, "human", must_send=severity >= 3)], human=True)
        except DeliveryUnavailable as exc:
            return SendOutcome(False, f"unavailable: {exc}")
        outcome = outcomes[0]
        if outcome.sent:
            self.store.add_counselor_message(conversation_id, text)
        return outcome


def _problems(outcomes: list[SendOutcome]) -> str | None:
    problems = [o.reason for o in outcomes if not o.sent]
    return "; ".join(problems) if problems else None
