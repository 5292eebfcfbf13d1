"""Facebook Messenger (Meta Messenger Platform) adapter.

Spec facts used (sources in ``docs/channels.md``):

- Webhook verification: ``GET`` with ``hub.mode=subscribe``, ``hub.verify_token``
  (the token typed in the app dashboard) and ``hub.challenge`` (echoed back).
- Events: ``POST`` with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret,
  raw body)>``; body ``{"object": "page", "entry": [{"messaging": [...]}]}``; a
  ``message`` has ``mid``, ``text``, optional ``quick_reply.payload`` or
  ``attachments[].type``; ``is_echo`` marks the Page's own messages; a
  ``postback`` has ``title``, ``payload`` and (since v11) ``mid``.
- Send API: ``POST {graph}/{version}/{page-id}/messages`` with the Page access
  token, ``recipient.id`` (the PSID), ``messaging_type=RESPONSE`` within 24 hours
  of the user's message; a person's reply up to 7 days later uses
  ``messaging_type=MESSAGE_TAG`` + ``tag=HUMAN_AGENT`` (automated messages may not
  use it). Quick replies: up to 13, ``content_type=text``, title up to 20 chars.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.channels.base import (
    DeliveryRejected,
    InboundMessage,
    MissingSignature,
    OutboundMessage,
    PayloadError,
    QuickReply,
    SendShortcuts,
    SentMessage,
    SignatureError,
    TokenExpired,
    WindowClosed,
    text_with_options,
)
from assistant.channels.http import PlatformHttpClient
from assistant.settings import MessengerSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
MAX_QUICK_REPLIES = 13
MAX_TITLE_CHARS = 20
MAX_TEXT_CHARS = 2000
# Graph API errors: 190 invalid/expired token; "(#10) This message is sent outside of
# allowed window" (code 10, subcodes such as 2018278 and 2018065); 551 person unavailable.
TOKEN_ERRORS = {190}
WINDOW_SUBCODES = {2018278, 2018065, 2018108}


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MessengerChannel(SendShortcuts):
    name = "messenger"

    def __init__(self, settings: MessengerSettings, http: PlatformHttpClient) -> None:
        self.settings = settings
        self.http = http

    # -- webhooks -----------------------------------------------------------------
    def verify_subscription(self, mode: str, token: str, challenge: str) -> str:
        """The challenge to echo when Meta's verification request carries our verify token."""
        expected = self.settings.verify_token.get_secret_value()
        if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
            raise SignatureError("hub.verify_token does not match (or hub.mode is not subscribe)")
        return challenge

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise MissingSignature("missing X-Hub-Signature-256 header")
        expected = sign(self.settings.app_secret.get_secret_value(), body)
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise SignatureError("X-Hub-Signature-256 does not match the body")

    def parse(self, body: bytes) -> list[InboundMessage]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PayloadError("the body is not JSON") from exc
        if not isinstance(data, dict) or data.get("object") != "page":
            return []
        out: list[InboundMessage] = []
        try:
            for entry in data.get("entry") or []:
                for event in entry.get("messaging") or []:
                    parsed = self._event(event)
                    if parsed is not None:
                        out.append(parsed)
        except (AttributeError, KeyError, TypeError) as exc:
            raise PayloadError(f"unexpected Messenger event shape ({type(exc).__name__})") from exc
        return out

    def _event(self, event: dict[str, Any]) -> InboundMessage | None:
        sender = str(event["sender"]["id"])
        timestamp = event.get("timestamp")
        ts = int(timestamp) if isinstance(timestamp, int | float | str) and str(timestamp).isdigit() else None
        if "message" in event:
            msg = event["message"]
            if msg.get("is_echo"):
                return None
            mid = str(msg["mid"])
            types = tuple(str(a.get("type") or "unknown") for a in msg.get("attachments") or [])
            text = str(msg.get("text") or "")
            payload = (msg.get("quick_reply") or {}).get("payload")
            if not types and not text.strip() and not payload:
                return None
            return InboundMessage(
                channel=self.name,
                event_key=mid,
                kind="attachment" if types else "text",
                sender_id=sender,
                text=text,
                payload=str(payload) if payload is not None else None,
                platform_message_id=mid,
                attachment_types=types,
                timestamp_ms=ts,
            )
        if "postback" in event:
            postback = event["postback"]
            mid = postback.get("mid")
            return InboundMessage(
                channel=self.name,
                event_key=str(mid) if mid else "",
                kind="postback",
                sender_id=sender,
                text=str(postback.get("title") or ""),
                payload=str(postback.get("payload")) if postback.get("payload") is not None else None,
                platform_message_id=None,
                timestamp_ms=ts,
            )
        return None  # deliveries, reads, reactions, referrals...

    # -- sending ------------------------------------------------------------------
    @property
    def _url(self) -> str:
        base = self.settings.graph_api_base_url.rstrip("/")
        return f"{base}/{self.settings.graph_api_version}/{self.settings.page_id}/messages"

    def _params(self) -> dict[str, str]:
        token = self.settings.page_access_token.get_secret_value()
        proof = hmac.new(
            self.settings.app_secret.get_secret_value().encode(), token.encode(), hashlib.sha256
        ).hexdigest()
        return {"access_token": token, "appsecret_proof": proof}

    def send(self, message: OutboundMessage) -> SentMessage:
        # Quick replies natively when the platform takes them, else the numbered-text fallback.
        options = message.quick_replies if len(message.quick_replies) <= MAX_QUICK_REPLIES else ()
        text = text_with_options(message.text, message.quick_replies) if not options else message.text
        try:
            return self._post(message, text[:MAX_TEXT_CHARS], options)
        except DeliveryRejected as exc:
            if not options or isinstance(exc, TokenExpired | WindowClosed):
                raise
            log.warning("messenger refused quick replies (%s); sending the text fallback", exc.code)
            sent = self._post(message, text_with_options(message.text, options)[:MAX_TEXT_CHARS], ())
            return SentMessage(sent.platform_message_id, fallback_used=True)

    def _post(self, message: OutboundMessage, text: str, options: Sequence[QuickReply]) -> SentMessage:
        body: dict[str, Any] = {"recipient": {"id": message.recipient_id}, "message": {"text": text}}
        if message.human:
            body["messaging_type"] = "MESSAGE_TAG"
            body["tag"] = "HUMAN_AGENT"
        else:
            body["messaging_type"] = "RESPONSE"
        if options:
            body["message"]["quick_replies"] = [
                {"content_type": "text", "title": o.title[:MAX_TITLE_CHARS], "payload": o.payload} for o in options
            ]
        response = self.http.request("POST", self._url, json=body, params=self._params())
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code < 400 and isinstance(data, dict) and "error" not in data:
            return SentMessage(platform_message_id=str(data.get("message_id") or "") or None)
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code, subcode = error.get("code"), error.get("error_subcode")
        detail = f"Graph API error {code}/{subcode} (HTTP {response.status_code})"
        if code in TOKEN_ERRORS:
            self.http.count_error("token")
            raise TokenExpired(f"messenger page access token refused: {detail}", response.status_code, code)
        window = code == 10 and "window" in str(error.get("message", "")).lower()
        if subcode in WINDOW_SUBCODES or window or code == 551:
            self.http.count_error("window")
            raise WindowClosed(f"messenger reply window closed: {detail}", response.status_code, code)
        self.http.count_error("rejected")
        raise DeliveryRejected(f"messenger refused the message: {detail}", response.status_code, code)

    def send_human(self, recipient_id: str, text: str) -> SentMessage:
        """A counselor's own message: tagged HUMAN_AGENT (never used for the bot's messages)."""
        return self.send(OutboundMessage(recipient_id, text, human=True))

    def close(self) -> None:
        self.http.close()
