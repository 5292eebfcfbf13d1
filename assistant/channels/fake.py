"""``CollectingChannel``: a deterministic in-memory channel for tests and for anyone
writing a new adapter. It signs like a real platform (HMAC-SHA256 of the raw body
in ``X-Fake-Signature``), parses a tiny JSON format, and records what it sent.

    {"events": [{"id": "m1", "kind": "text", "sender": "u1", "text": "chào",
                 "payload": null, "attachments": []}]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from typing import Any, cast

from assistant.channels.base import (
    DeliveryError,
    EventKind,
    InboundMessage,
    MissingSignature,
    OutboundMessage,
    PayloadError,
    SendShortcuts,
    SentMessage,
    SignatureError,
)

SIGNATURE_HEADER = "x-fake-signature"
_KINDS = ("text", "attachment", "postback", "follow", "unfollow")


class CollectingChannel(SendShortcuts):
    def __init__(self, name: str = "fake", secret: str = "fake-secret") -> None:
        self.name = name
        self.secret = secret
        self.sent: list[OutboundMessage] = []
        self.failures: list[DeliveryError] = []
        self._lock = threading.Lock()
        self._counter = 0

    # -- helpers for tests -----------------------------------------------------
    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def fail_next(self, error: DeliveryError) -> None:
        """The next send raises ``error`` (then sending works again)."""
        with self._lock:
            self.failures.append(error)

    def texts(self, recipient_id: str | None = None) -> list[str]:
        with self._lock:
            return [m.text for m in self.sent if recipient_id is None or m.recipient_id == recipient_id]

    # -- Channel -----------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise MissingSignature("missing X-Fake-Signature header")
        if not hmac.compare_digest(given.encode(), self.sign(body).encode()):
            raise SignatureError("X-Fake-Signature does not match the body")

    def parse(self, body: bytes) -> list[InboundMessage]:
        try:
            data = json.loads(body)
            events = data["events"]
            out = []
            for e in events:
                kind = e.get("kind", "text")
                if kind not in _KINDS:
                    continue
                out.append(
                    InboundMessage(
                        channel=self.name,
                        event_key=str(e["id"]),
                        kind=cast(EventKind, kind),
                        sender_id=str(e["sender"]),
                        text=str(e.get("text") or ""),
                        payload=e.get("payload"),
                        platform_message_id=str(e["id"]) if kind in ("text", "attachment") else None,
                        attachment_types=tuple(e.get("attachments") or ()),
                    )
                )
            return out
        except (ValueError, KeyError, TypeError) as exc:
            raise PayloadError(f"not a fake-channel webhook: {exc}") from exc

    def send(self, message: OutboundMessage) -> SentMessage:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)
            self._counter += 1
            return SentMessage(platform_message_id=f"{self.name}-out-{self._counter}")

    def close(self) -> None:
        return None

    @staticmethod
    def webhook(events: list[dict[str, Any]]) -> bytes:
        return json.dumps({"events": events}, ensure_ascii=False).encode()
