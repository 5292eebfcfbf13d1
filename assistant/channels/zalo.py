"""Zalo Official Account adapter.

Spec facts used (sources in ``docs/channels.md``):

- Webhook events are JSON with ``app_id``, ``event_name``, ``timestamp``
  (milliseconds, a string) and ``sender.id`` / ``follower.id``; messages carry
  ``message.msg_id`` and ``message.text`` (or ``message.attachments``). Events
  used: ``user_send_text``, ``user_send_image`` and the other ``user_send_*``,
  ``follow``, ``unfollow``; delivery/seen receipts and ``oa_send_*`` are skipped.
- ``X-ZEvent-Signature: mac=<hex SHA-256(app_id + raw body + timestamp + OA secret key)>``,
  with the app id and the ``timestamp`` field of the body. The OA secret key is
  NOT the app secret. The webhook must answer 200 within 2 seconds; Zalo retries
  for hours otherwise (2 to 12 hours, depending on the source).
- Customer-service messages: ``POST https://openapi.zalo.me/v3.0/oa/message/cs``
  with the ``access_token`` header and ``{"recipient": {...}, "message": {"text"}}``
  (text up to 2,000 characters). ``recipient.message_id`` (the user's message)
  spends the free reply quota of that message (8 within 48 hours); a message to
  ``recipient.user_id`` only is counted as a proactive (paid) message. Answer:
  ``{"error": 0, "data": {"message_id": ...}}``; ``-216``/``-220`` mean the access
  token is invalid/expired, ``-32`` too many requests, ``-230``/``-232`` no
  interaction in the last 7 days.
- Tokens: ``POST https://oauth.zaloapp.com/v4/oa/access_token`` (form:
  ``refresh_token``, ``app_id``, ``grant_type=refresh_token``; header ``secret_key``
  = app secret) returns a new access token (``expires_in`` 90000 s) and a NEW
  refresh token: refresh tokens are single-use, so the pair is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assistant.channels.base import (
    DeliveryRejected,
    InboundMessage,
    MissingSignature,
    OutboundMessage,
    PayloadError,
    SendShortcuts,
    SentMessage,
    SignatureError,
    TokenExpired,
    WindowClosed,
    text_with_options,
)
from assistant.channels.http import PlatformHttpClient
from assistant.channels.metrics import ChannelMetrics
from assistant.channels.models import ChannelCredential, as_utc
from assistant.db import Database
from assistant.db.models import utcnow
from assistant.settings import ZaloSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-zevent-signature"
MAX_TEXT_CHARS = 2000
MAX_BUTTONS = 5
TOKEN_ERRORS = {-216, -220}
RATE_LIMITED = -32
WINDOW_ERRORS = {-230, -232}
ATTACHMENT_EVENTS = {
    "user_send_image": "image",
    "user_send_file": "file",
    "user_send_sticker": "sticker",
    "user_send_gif": "gif",
    "user_send_audio": "audio",
    "user_send_video": "video",
    "user_send_location": "location",
    "user_send_link": "link",
    "user_send_business_card": "business_card",
}


def mac(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """The ``X-ZEvent-Signature`` value Zalo sends for ``body``."""
    digest = hashlib.sha256(app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()).hexdigest()
    return "mac=" + digest


def _rate_limited(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return "api_rate_limit" if isinstance(data, dict) and data.get("error") == RATE_LIMITED else None


class ZaloTokenStore:
    """The OA access token, refreshed before it expires or when the API refuses it.

    The refresh token is single-use: the new pair is written to ``channel_credential``
    under a lock (a thread lock, plus ``SELECT ... FOR UPDATE`` on PostgreSQL) so two
    workers never spend the same refresh token.
    """

    REFRESH_MARGIN = timedelta(minutes=5)

    def __init__(
        self,
        db: Database,
        settings: ZaloSettings,
        http: PlatformHttpClient,
        metrics: ChannelMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.http = http
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()

    def _fingerprint(self) -> str:
        return hashlib.sha256(self.settings.refresh_token.get_secret_value().encode()).hexdigest()

    def _load(self, s: Session, lock: bool) -> ChannelCredential:
        query = select(ChannelCredential).where(ChannelCredential.channel == "zalo")
        if lock:
            query = query.with_for_update()
        row = s.scalars(query).one_or_none()
        fingerprint = self._fingerprint()
        if row is None:
            row = ChannelCredential(channel="zalo", seed_fingerprint=fingerprint)
            s.add(row)
        elif row.seed_fingerprint == fingerprint:
            return row
        # First use, or the operator typed a new refresh token (the OA was authorized again).
        row.access_token = self.settings.access_token.get_secret_value()
        row.refresh_token = self.settings.refresh_token.get_secret_value()
        row.expires_at = None
        row.seed_fingerprint = fingerprint
        s.flush()
        return row

    def access_token(self) -> str:
        token, expires_at = "", None
        for _ in range(2):
            try:
                with self.db.session() as s:
                    row = self._load(s, lock=False)
                    token, expires_at = row.access_token, as_utc(row.expires_at)
                break
            except IntegrityError:
                continue  # seeded by another process at the same moment
        if token and (expires_at is None or expires_at - self.clock() > self.REFRESH_MARGIN):
            return token
        return self.refresh(stale=token)

    def refresh(self, stale: str | None = None) -> str:
        """A fresh access token; when another worker already replaced ``stale``, that one."""
        with self._lock, self.db.session() as s:
            row = self._load(s, lock=True)
            if stale is not None and row.access_token and row.access_token != stale:
                return row.access_token
            url = self.settings.oauth_base_url.rstrip("/") + "/v4/oa/access_token"
            response = self.http.request(
                "POST",
                url,
                data={"refresh_token": row.refresh_token, "app_id": self.settings.app_id, "grant_type": "refresh_token"},
                headers={"secret_key": self.settings.app_secret.get_secret_value()},
            )
            try:
                data: Any = response.json()
            except ValueError:
                data = {}
            if not isinstance(data, dict) or not data.get("access_token"):
                code = data.get("error") if isinstance(data, dict) else None
                if self.metrics is not None:
                    self.metrics.token_refreshes.labels("zalo", "refused").inc()
                log.error(
                    "zalo access token refresh refused (error %s, HTTP %s): authorize the OA again and set "
                    "ASSISTANT_CHANNELS__ZALO__REFRESH_TOKEN",
                    code,
                    response.status_code,
                    extra={"platform": "zalo", "code": code},
                )
                raise TokenExpired("zalo refresh token refused", response.status_code, code)
            row.access_token = str(data["access_token"])
            row.refresh_token = str(data.get("refresh_token") or row.refresh_token)
            try:
                expires_in = int(data.get("expires_in") or 90000)
            except (TypeError, ValueError):
                expires_in = 90000
            row.expires_at = self.clock() + timedelta(seconds=expires_in)
            if self.metrics is not None:
                self.metrics.token_refreshes.labels("zalo", "ok").inc()
            log.info("zalo access token refreshed", extra={"platform": "zalo", "expires_in": expires_in})
            return row.access_token


class ZaloChannel(SendShortcuts):
    name = "zalo"

    def __init__(
        self,
        settings: ZaloSettings,
        http: PlatformHttpClient,
        tokens: ZaloTokenStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens
        self.clock = clock

    # -- webhooks -----------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise MissingSignature("missing X-ZEvent-Signature header")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise SignatureError("the body is not JSON: cannot read the signed timestamp") from exc
        timestamp = str(data.get("timestamp") or "") if isinstance(data, dict) else ""
        if not timestamp:
            raise SignatureError("no timestamp in the body")
        expected = mac(
            self.settings.app_id, body, timestamp, self.settings.oa_secret_key.get_secret_value()
        )
        normalized = given.strip().lower()
        if not normalized.startswith("mac="):
            normalized = "mac=" + normalized
        if not hmac.compare_digest(normalized.encode(), expected.encode()):
            raise SignatureError("X-ZEvent-Signature does not match the body")
        try:
            sent_at = int(timestamp) / 1000
        except ValueError as exc:
            raise SignatureError("the timestamp is not a number") from exc
        if abs(self.clock() - sent_at) > self.settings.timestamp_tolerance_seconds:
            raise SignatureError("the event timestamp is outside the accepted tolerance (replay?)")

    def parse(self, body: bytes) -> list[InboundMessage]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PayloadError("the body is not JSON") from exc
        if not isinstance(data, dict):
            raise PayloadError("the body is not a JSON object")
        try:
            event = self._event(data)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"unexpected Zalo event shape ({type(exc).__name__})") from exc
        return [event] if event is not None else []

    def _event(self, data: dict[str, Any]) -> InboundMessage | None:
        name = str(data.get("event_name") or "")
        raw_ts = str(data.get("timestamp") or "")
        ts = int(raw_ts) if raw_ts.isdigit() else None
        if name in ("follow", "unfollow"):
            return InboundMessage(
                channel=self.name,
                event_key="",
                kind="follow" if name == "follow" else "unfollow",
                sender_id=str(data["follower"]["id"]),
                timestamp_ms=ts,
            )
        if name != "user_send_text" and name not in ATTACHMENT_EVENTS:
            return None  # receipts, oa_send_*, anonymous users, shop events...
        message = data["message"]
        msg_id = str(message["msg_id"])
        text = str(message.get("text") or "")
        if name == "user_send_text":
            if not text.strip():
                return None
            return InboundMessage(
                channel=self.name,
                event_key=msg_id,
                kind="text",
                sender_id=str(data["sender"]["id"]),
                text=text,
                platform_message_id=msg_id,
                timestamp_ms=ts,
            )
        types = tuple(str(a.get("type") or ATTACHMENT_EVENTS[name]) for a in message.get("attachments") or [])
        return InboundMessage(
            channel=self.name,
            event_key=msg_id,
            kind="attachment",
            sender_id=str(data["sender"]["id"]),
            text=text,
            platform_message_id=msg_id,
            attachment_types=types or (ATTACHMENT_EVENTS[name],),
            timestamp_ms=ts,
        )

    # -- sending ------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> SentMessage:
        recipient = {"message_id": message.reply_to} if message.reply_to else {"user_id": message.recipient_id}
        buttons = message.quick_replies if len(message.quick_replies) <= MAX_BUTTONS else ()
        text = text_with_options(message.text, message.quick_replies) if not buttons else message.text
        body: dict[str, Any] = {"recipient": recipient, "message": {"text": text[:MAX_TEXT_CHARS]}}
        if buttons:
            # oa.query.show: a tap sends the payload as the user's own message, shown in the chat.
            body["message"]["attachment"] = {
                "type": "template",
                "payload": {
                    "buttons": [{"title": o.title[:100], "type": "oa.query.show", "payload": o.title} for o in buttons]
                },
            }
        try:
            return self._post(body)
        except DeliveryRejected as exc:
            if not buttons or isinstance(exc, TokenExpired | WindowClosed):
                raise
            log.warning("zalo refused the buttons (error %s); sending the text fallback", exc.code)
            body["message"] = {"text": text_with_options(message.text, buttons)[:MAX_TEXT_CHARS]}
            sent = self._post(body)
            return SentMessage(sent.platform_message_id, fallback_used=True, details=sent.details)

    def _post(self, body: dict[str, Any]) -> SentMessage:
        url = self.settings.api_base_url.rstrip("/") + "/v3.0/oa/message/cs"
        token = self.tokens.access_token()
        for attempt in range(2):
            response = self.http.request(
                "POST", url, json=body, headers={"access_token": token}, retry_on=_rate_limited
            )
            try:
                data: Any = response.json()
            except ValueError:
                data = {}
            data = data if isinstance(data, dict) else {}
            code = data.get("error", 0 if response.status_code < 400 else None)
            if response.status_code < 400 and code == 0:
                payload: dict[str, Any] = data["data"] if isinstance(data.get("data"), dict) else {}
                quota: dict[str, Any] = payload["quota"] if isinstance(payload.get("quota"), dict) else {}
                return SentMessage(
                    platform_message_id=str(payload.get("message_id") or "") or None,
                    details={"quota_type": str(quota.get("quota_type") or "")},
                )
            if code in TOKEN_ERRORS and attempt == 0:
                log.info("zalo access token refused (error %s); refreshing", code, extra={"platform": "zalo"})
                token = self.tokens.refresh(stale=token)
                continue
            detail = f"Zalo error {code} (HTTP {response.status_code})"
            if code in TOKEN_ERRORS:
                self.http.count_error("token")
                raise TokenExpired(f"zalo access token refused after a refresh: {detail}", response.status_code, code)
            if code in WINDOW_ERRORS:
                self.http.count_error("window")
                raise WindowClosed(f"zalo reply window closed: {detail}", response.status_code, code)
            self.http.count_error("rejected")
            raise DeliveryRejected(f"zalo refused the message: {detail}", response.status_code, code)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.http.close()
