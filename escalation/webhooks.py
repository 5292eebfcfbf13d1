"""Standard Webhooks signing and verification (https://www.standardwebhooks.com).

Headers of every delivery:

- ``webhook-id``: the message id; for a report it is ``<report id>.v<version>``,
  the idempotency key: a receiver that has seen the id already must answer 2xx
  and do nothing more (retries and worker restarts can repeat a delivery);
- ``webhook-timestamp``: Unix seconds when this attempt was signed;
- ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` signatures
  over ``<id>.<timestamp>.<body>``, one per active secret (key rotation: add the
  new secret, let receivers switch, then remove the old one).

Secrets are ``whsec_<base64>`` (the key is the decoded bytes) or any other
string (the key is its UTF-8 bytes). ``verify`` is the receiver-side helper;
``escalation/example_receiver.py`` shows it in a complete receiver.

    WebhookVerificationError   missing header, stale timestamp or no matching signature
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence

TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(Exception):
    pass


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def headers_for(secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(secrets, msg_id, ts, body),
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a delivery on the raw body; returns the ``webhook-id``.

    Accepts when ANY of the header's ``v1`` signatures matches ANY of the
    receiver's secrets, and the timestamp is within ``tolerance`` seconds.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    ts_raw = lower.get("webhook-timestamp")
    sig_header = lower.get("webhook-signature")
    if not msg_id or not ts_raw or not sig_header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(ts_raw)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise WebhookVerificationError("webhook-timestamp too old or too far in the future")
    offered = [part.split(",", 1)[1] for part in sig_header.split() if part.startswith("v1,")]
    for secret in secrets:
        expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return msg_id
    raise WebhookVerificationError("no matching signature")
