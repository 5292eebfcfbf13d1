"""The ``Channel`` interface shared by Zalo OA and Messenger, and its errors.

A channel adapter does three things and nothing more: it verifies a webhook's
signature on the RAW body, parses the webhook into ``InboundMessage`` objects,
and sends text (optionally with quick replies, falling back to plain text with
numbered options). Everything else (dedupe, audience, the chat pipeline, reply
windows and quotas) lives in ``assistant.channels.service`` and is the same for
every platform.

    ChannelError
     ├── SignatureError          the webhook is not from the platform (401/403)
     │    └── MissingSignature    no signature header at all (401)
     ├── PayloadError            the body is not the platform's JSON (400)
     └── DeliveryError           a reply could not be sent
          ├── DeliveryRejected    the platform refused it (4xx, API error code)
          │    ├── TokenExpired   the access token must be refreshed first
          │    └── WindowClosed   no reply window is open for this user
          └── DeliveryUnavailable the platform did not answer (5xx/429/timeouts, retries spent)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

EventKind = Literal["text", "attachment", "postback", "follow", "unfollow"]


class ChannelError(Exception):
    pass


class SignatureError(ChannelError):
    """The request is not signed by the platform; answered 403 and logged."""

    status_code = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingSignature(SignatureError):
    status_code = 401


class PayloadError(ChannelError):
    """The (authentic) body could not be understood; answered 400."""


class DeliveryError(ChannelError):
    def __init__(self, message: str, status: int | None = None, code: int | str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DeliveryRejected(DeliveryError):
    pass


class TokenExpired(DeliveryRejected):
    pass


class WindowClosed(DeliveryRejected):
    pass


class DeliveryUnavailable(DeliveryError):
    pass


@dataclass(frozen=True)
class QuickReply:
    """A button the user can tap; ``payload`` comes back with the answer."""

    title: str
    payload: str


@dataclass(frozen=True)
class InboundMessage:
    """One user event from a platform webhook, already verified.

    ``sender_id`` is the RAW platform user id: it lives in memory only until the
    service has turned it into a pseudonym (and stored it where replies need it);
    it is never logged. Attachments are described by their types only: their URLs
    are never read, kept or stored.
    """

    channel: str
    event_key: str
    kind: EventKind
    sender_id: str
    text: str = ""
    payload: str | None = None
    platform_message_id: str | None = None
    attachment_types: tuple[str, ...] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """One message to send. ``reply_to`` is the platform id of the user message it answers
    (Zalo counts replies quoting it against the free-reply quota); ``human`` marks a
    counselor's message (Messenger: the HUMAN_AGENT tag, which the bot never uses)."""

    recipient_id: str
    text: str
    quick_replies: tuple[QuickReply, ...] = ()
    reply_to: str | None = None
    human: bool = False


@dataclass(frozen=True)
class SentMessage:
    platform_message_id: str | None
    fallback_used: bool = False
    details: dict[str, str] = field(default_factory=dict)


def text_with_options(text: str, options: Sequence[QuickReply]) -> str:
    """The text fallback of quick replies: the options as numbered lines."""
    if not options:
        return text
    lines = [f"{i}. {option.title}" for i, option in enumerate(options, start=1)]
    return text + "\n" + "\n".join(lines)


class SendShortcuts:
    """``send_text`` and ``send_quick_replies`` built on the class's own ``send``."""

    def send(self, message: OutboundMessage) -> SentMessage:  # noqa: ARG002 - overridden by each channel
        raise TypeError(f"{type(self).__name__} must define send()")

    def send_text(self, recipient_id: str, text: str, reply_to: str | None = None) -> SentMessage:
        return self.send(OutboundMessage(recipient_id, text, reply_to=reply_to))

    def send_quick_replies(
        self,
        recipient_id: str,
        text: str,
        options: Sequence[QuickReply],
        reply_to: str | None = None,
    ) -> SentMessage:
        return self.send(OutboundMessage(recipient_id, text, tuple(options), reply_to=reply_to))


@runtime_checkable
class Channel(Protocol):
    """One messaging platform."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless ``body`` (the raw bytes) is signed by the platform."""
        ...

    def parse(self, body: bytes) -> list[InboundMessage]:
        """The user events in a verified webhook body (others are skipped); ``PayloadError`` if broken."""
        ...

    def send_text(self, recipient_id: str, text: str, reply_to: str | None = None) -> SentMessage: ...

    def send_quick_replies(
        self,
        recipient_id: str,
        text: str,
        options: Sequence[QuickReply],
        reply_to: str | None = None,
    ) -> SentMessage:
        """Send ``text`` with buttons; where buttons are refused, the numbered-text fallback."""
        ...

    def send(self, message: OutboundMessage) -> SentMessage: ...

    def close(self) -> None: ...
