"""Delivery sinks: where the worker sends reports and alerts.

One ``DeliverySink`` protocol, several implementations:

- ``WebhookDeliverySink``: HTTPS POST of the JSON envelope, signed the
  Standard Webhooks way (``escalation.webhooks``). 2xx is delivered (a JSON
  answer may carry ``{"acknowledged": true, "reference": "..."}``); 408, 429,
  5xx and network errors are ``DeliveryUnavailable`` (retried); any other 4xx
  is ``DeliveryRejected`` (not retried; counselors are alerted).
- ``EmailDeliverySink``: a short notice with a link to the console, over
  SMTP. Never the report content: the report stays behind authentication.
- ``FileDropDeliverySink``: one JSON file per message id, written atomically;
  a second delivery of the same id is a no-op.
- ``CollectingDeliverySink``: the fake for tests; records envelopes and can be
  told to fail.

To add a sink: implement ``deliver(envelope) -> Receipt``, raise
``DeliveryUnavailable`` / ``DeliveryRejected``, register it in ``make_sink``
and in ``EndpointSettings.sink``, and subclass ``DeliverySinkContract`` in the
tests.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from escalation.errors import DeliveryRejected, DeliveryUnavailable
from escalation.settings import EndpointSettings, SmtpSettings
from escalation.webhooks import headers_for


@dataclass(frozen=True)
class Notice:
    """What a person sees in an e-mail: no report content, only where to look."""

    subject: str
    lines: tuple[str, ...]
    link: str


@dataclass(frozen=True)
class Envelope:
    message_id: str  # webhook-id and idempotency key: "<report id>.v<version>" for reports
    event_type: str  # "tip_report.approved", "alert.report_created", ...
    destination: str  # agency code or alert group
    payload: dict[str, Any]  # the JSON body: {"type", "timestamp", "data"}
    notice: Notice

    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Receipt:
    status_code: int | None = None
    reference: str | None = None
    acknowledged: bool = False


@runtime_checkable
class DeliverySink(Protocol):
    name: str

    def deliver(self, envelope: Envelope) -> Receipt: ...


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The system's CA bundle, loaded once (building it costs tens of milliseconds)."""
    return ssl.create_default_context()


class WebhookDeliverySink:
    name = "webhook"

    def __init__(self, url: str, secrets: Sequence[str], timeout: float = 10.0) -> None:
        if not secrets:
            raise ValueError("a webhook sink needs at least one secret")
        self.url = url
        self.secrets = list(secrets)
        self.timeout = timeout

    def deliver(self, envelope: Envelope) -> Receipt:
        body = envelope.body()
        headers = {
            **headers_for(self.secrets, envelope.message_id, body),
            "content-type": "application/json",
            "user-agent": "ban-an-toan-delivery/1",
        }
        try:
            # A short-lived client (nothing left open between deliveries) with a shared TLS context.
            with httpx.Client(timeout=self.timeout, follow_redirects=False, verify=tls_context()) as client:
                response = client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from exc
        status = response.status_code
        if 200 <= status < 300:
            reference, acknowledged = None, False
            if response.headers.get("content-type", "").startswith("application/json"):
                try:
                    data = response.json()
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    ref = data.get("reference")
                    reference = str(ref)[:200] if ref is not None else None
                    acknowledged = data.get("acknowledged") is True
            return Receipt(status, reference, acknowledged)
        if status in (408, 425, 429) or status >= 500:
            raise DeliveryUnavailable(f"receiver answered HTTP {status}", status)
        raise DeliveryRejected(f"receiver refused with HTTP {status}", status)


class EmailDeliverySink:
    name = "email"

    def __init__(self, smtp: SmtpSettings, to: Sequence[str]) -> None:
        self.smtp = smtp
        self.to = list(to)

    def deliver(self, envelope: Envelope) -> Receipt:
        msg = EmailMessage()
        msg["Subject"] = envelope.notice.subject
        msg["From"] = self.smtp.from_addr
        msg["To"] = ", ".join(self.to)
        msg["Message-ID"] = make_msgid(idstring=re.sub(r"[^\w.-]", "", envelope.message_id)[:60], domain="ban-an-toan")
        msg["X-Idempotency-Key"] = envelope.message_id
        msg.set_content("\n".join([*envelope.notice.lines, "", envelope.notice.link, ""]))
        try:
            with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout_seconds) as client:
                if self.smtp.starttls:
                    client.starttls()
                if self.smtp.username and self.smtp.password is not None:
                    client.login(self.smtp.username, self.smtp.password.get_secret_value())
                refused = client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryRejected(f"all recipients refused: {sorted(exc.recipients)}"[:300]) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if refused:
            raise DeliveryUnavailable(f"some recipients refused: {sorted(refused)}"[:300])
        return Receipt(250)


class FileDropDeliverySink:
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, envelope: Envelope) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", envelope.message_id)
        return self.directory / f"{safe}.json"

    def deliver(self, envelope: Envelope) -> Receipt:
        target = self.path_for(envelope)
        if target.exists():
            return Receipt(200, target.name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as fh:
                fh.write(envelope.body())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise DeliveryUnavailable(f"file drop failed: {exc}"[:300]) from exc
        return Receipt(200, target.name)


@dataclass
class CollectingDeliverySink:
    """The fake: records what it was given; ``fail_with`` makes the next deliveries fail."""

    name: str = "collecting"
    delivered: list[Envelope] = field(default_factory=list)
    fail_with: list[Exception] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, envelope: Envelope) -> Receipt:
        with self._lock:
            if self.fail_with:
                raise self.fail_with.pop(0)
            self.delivered.append(envelope)
        return Receipt(200)


def make_sink(endpoint: EndpointSettings, smtp: SmtpSettings, default_dir: Path) -> DeliverySink:
    if endpoint.sink == "webhook":
        assert endpoint.url is not None
        return WebhookDeliverySink(
            endpoint.url, [s.get_secret_value() for s in endpoint.secrets], endpoint.timeout_seconds
        )
    if endpoint.sink == "email":
        return EmailDeliverySink(smtp, endpoint.email_to)
    return FileDropDeliverySink(endpoint.directory or default_dir)
